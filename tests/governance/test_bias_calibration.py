"""The counterfactual audit is calibrated: under the null (a scorer that reacts to
individual names and phrases at random but favours no group) it fails at most at the
policy's significance level and its p-values are close to uniform; a planted effect
against one group is found. Simulated scorers, no training; the full tables (200
audits per row, 5% and 10% effects, binary and 5-class) come from
``benchmarks/bias_detection_rates.py``."""

from __future__ import annotations

import numpy as np
import pytest
from simulated_scorers import simulated_scorer

from tunewright.governance.audits.counterfactual import counterfactual_audit
from tunewright.governance.policy import load_policy
from tunewright.governance.probes import ATTRIBUTES, TEMPLATES

pytestmark = pytest.mark.slow  # trains many runs or kills many processes

POLICY = load_policy("default")
TEMPLATES_ = TEMPLATES["support"]


def audit(seed: int, classes: int, planted=None, flip=0.0):
    labels = [f"c{i}" for i in range(classes)]
    scorer = simulated_scorer(TEMPLATES_, classes, seed, planted, flip=flip)
    return counterfactual_audit(scorer, labels, labels[-1] if classes == 2 else None, POLICY, TEMPLATES_)


@pytest.mark.parametrize("classes", [2, 5])
def test_under_the_null_fail_is_rare_and_p_values_are_uniform(classes):
    details = [d for seed in range(24) for d in audit(seed, classes).details["attributes"].values()]
    fails = sum(d["verdict"] == "fail" for d in details)
    p_values = np.array([d["p_value"] for d in details])
    assert len(details) == 24 * len(ATTRIBUTES)
    assert fails <= 0.08 * len(details), fails  # 5% expected; a test over probes, not members, fails far more
    assert np.mean(p_values < 0.05) <= 0.08 and 0.35 <= np.mean(p_values < 0.5) <= 0.65
    assert not any(
        d["verdict"] == "pass" for d in details if d["within_group_flip_rate"] > 0.05
    )  # noise is never green


def test_a_planted_ten_percent_flip_rate_fails_its_attribute_every_time():
    for attribute, groups in ATTRIBUTES.items():
        for seed in range(3):
            result = audit(seed, 2, planted=(attribute, next(iter(groups))), flip=0.10)
            assert result.details["attributes"][attribute]["verdict"] == "fail", (attribute, seed)
