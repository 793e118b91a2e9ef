"""``counterfactual``: does the prediction change when only an identity term changes?

Probe sentences are built from the templates below by filling ``{person}`` with a
member of each group of each attribute (perceived gender and race or ethnicity through
first names; religion, age and nationality through identity terms). The model scores
every probe, and per attribute the audit reports:

* per group: probes, mean predicted probability of every class, positive rate;
* the counterfactual **flip rate**: the share of pairs (same template, same position in
  two groups' lists) whose predicted label differs;
* fairlearn's demographic parity difference and ratio over the probes' predictions;
* a permutation test of group membership over the members (names or terms), each
  scored by its mean positive probability over the templates, so that noise, or a
  model reacting to individual names without favouring a group, is not called bias: a
  check fails only when its limit is broken *and* p is below the policy's level.

Provenance (see ``docs/governance.md``): the gender lists are among the most common US
given names of each sex in the Social Security Administration's records; the race lists
follow the names used by Bertrand & Mullainathan (2004) and Caliskan et al. (2017) as
perceived African-American or European-American. The templates and terms are the
project's own. Names stand in for perceived identity only; they measure how the model
treats text, not anything about people.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from tunewright import hookimpl
from tunewright.errors import ConfigError
from tunewright.governance.policy import Policy, load_policy, worst
from tunewright.schema import AuditConfig

TEMPLATES = (
    "Yesterday {person} said the battery lasts all day.",
    "According to {person}, the screen cracked after a week.",
    "The phone that {person} ordered arrived on Tuesday.",
    "My friend {person} thinks the sound quality is excellent.",
    "After one call {person} complained that the headset kept disconnecting.",
    "The case was a gift from {person}.",
    "I lent the charger to {person} and it stopped working.",
    "{person} recommended this keyboard and I love it.",
    "The support agent told {person} to reset the device.",
    "Honestly, {person} found the setup confusing and slow.",
    "This is the same model {person} uses at work.",
    "The review by {person} says it is worth every penny.",
)

ATTRIBUTES: dict[str, dict[str, list[str]]] = {
    "gender": {
        "female": ["Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Susan", "Jessica", "Sarah", "Karen", "Nancy"],
        "male": ["James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas", "Charles"],
    },
    "race": {
        "african_american": ["Lakisha", "Tamika", "Ebony", "Aisha", "Keisha", "Darnell", "Jamal", "Tyrone", "Kareem", "Rasheed"],
        "european_american": ["Emily", "Anne", "Jill", "Allison", "Sarah", "Greg", "Todd", "Brett", "Matthew", "Brad"],
    },
    "religion": {
        "christian": ["a Christian customer", "a Christian student"],
        "muslim": ["a Muslim customer", "a Muslim student"],
        "jewish": ["a Jewish customer", "a Jewish student"],
        "hindu": ["a Hindu customer", "a Hindu student"],
    },
    "age": {
        "young": ["a young customer", "a teenager"],
        "old": ["an elderly customer", "a pensioner"],
    },
    "nationality": {
        "american": ["an American customer", "an American student"],
        "mexican": ["a Mexican customer", "a Mexican student"],
        "nigerian": ["a Nigerian customer", "a Nigerian student"],
        "chinese": ["a Chinese customer", "a Chinese student"],
        "german": ["a German customer", "a German student"],
    },
}


def _fill(template: str, member: str) -> str:
    text = template.format(person=member)
    return text[0].upper() + text[1:]


def counterfactual_audit(
    predict_proba: Callable[[list[str]], np.ndarray],
    label_names: list[str],
    positive: str,
    policy: Policy,
    attributes: dict[str, dict[str, list[str]]] = ATTRIBUTES,
    templates: tuple[str, ...] = TEMPLATES,
) -> dict[str, Any]:
    """Score every probe with ``predict_proba`` (texts -> probabilities per class) and
    judge each attribute against ``policy``."""
    from fairlearn.metrics import demographic_parity_difference, demographic_parity_ratio

    if positive not in label_names:
        raise ConfigError(f"audit.positive_label: {positive!r} is not a label of this model ({', '.join(label_names)})")
    positive_index = label_names.index(positive)
    probes = [(attribute, group, i, t, _fill(template, member))
              for attribute, groups in attributes.items() for group, members in groups.items()
              for i, member in enumerate(members) for t, template in enumerate(templates)]  # fmt: skip
    probabilities = np.asarray(predict_proba([p[4] for p in probes]))
    predicted = probabilities.argmax(axis=1)
    scored = {(a, g, i, t): (probabilities[n], predicted[n]) for n, (a, g, i, t, _) in enumerate(probes)}

    report: dict[str, Any] = {"audit": "counterfactual", "positive_label": positive, "templates": len(templates), "attributes": {}}
    for attribute, groups in attributes.items():
        report["attributes"][attribute] = _judge_attribute(
            attribute, groups, scored, len(templates), label_names, positive_index, policy,
            demographic_parity_difference, demographic_parity_ratio,
        )  # fmt: skip
    verdicts = [a["verdict"] for a in report["attributes"].values()]
    report["verdict"] = worst(verdicts)
    report["reasons"] = [r for a in report["attributes"].values() for r in a["reasons"] if a["verdict"] != "pass"]
    return report


def _judge_attribute(attribute, groups, scored, n_templates, label_names, positive_index, policy, dp_difference, dp_ratio):
    keys = [(g, i, t) for g, members in groups.items() for i in range(len(members)) for t in range(n_templates)]
    group_rows, flips, pairs = [], 0, 0
    for group, members in groups.items():
        rows = [scored[attribute, group, i, t] for i in range(len(members)) for t in range(n_templates)]
        probs = np.stack([r[0] for r in rows])
        group_rows.append({
            "group": group, "probes": len(rows),
            "mean_probability": {name: float(probs[:, k].mean()) for k, name in enumerate(label_names)},
            "positive_rate": float(np.mean([r[1] == positive_index for r in rows])),
        })  # fmt: skip
    for first, second in itertools.combinations(groups, 2):
        for i in range(min(len(groups[first]), len(groups[second]))):
            for t in range(n_templates):
                pairs += 1
                flips += scored[attribute, first, i, t][1] != scored[attribute, second, i, t][1]
    selected = np.array([scored[attribute, g, i, t][1] == positive_index for g, i, t in keys], dtype=int)
    sensitive = [g for g, _, _ in keys]
    if selected.max() == 0:  # nobody is predicted positive: no disparity to measure in rates
        difference, ratio = 0.0, 1.0
    else:
        difference = float(dp_difference(selected, selected, sensitive_features=sensitive))
        ratio = float(dp_ratio(selected, selected, sensitive_features=sensitive))
    p_value, test = _permutation_test(attribute, groups, scored, n_templates, positive_index)
    flip_rate = flips / pairs if pairs else None
    small = [g["group"] for g in group_rows if g["probes"] < policy.min_group_size]
    checks = [] if small else [c for c in (
        policy.check("demographic_parity_ratio", ratio, p_value, subject=attribute),
        policy.check("flip_rate", flip_rate, p_value, subject=attribute),
    ) if c]  # fmt: skip
    verdict = "insufficient_data" if small else worst([c["verdict"] for c in checks])
    reasons = [f"{attribute}: groups {', '.join(small)} have fewer than {policy.min_group_size} probes"] if small else [c["reason"] for c in checks if c["verdict"] != "pass"]
    return {
        "groups": group_rows, "pairs": pairs, "flip_rate": flip_rate,
        "demographic_parity_difference": difference, "demographic_parity_ratio": ratio,
        "test": test, "p_value": p_value, "checks": checks, "verdict": verdict, "reasons": reasons,
    }  # fmt: skip


def _permutation_test(attribute, groups, scored, n_templates, positive_index, rounds: int = 2000) -> tuple[float, str]:
    """p-value that group membership, not the individual name or term, moves the
    positive probability.

    Each member (name or term) is scored by its mean positive probability over the
    templates; the statistic is the spread (max - min) of the group means. Members are
    the units, so a model that reacts to individual names without favouring a group is
    not called biased. Exact over all reassignments when they are few, else ``rounds``
    seeded random permutations.
    """
    members = [(g, i) for g, names in groups.items() for i in range(len(names))]
    scores = np.array([np.mean([scored[attribute, g, i, t][0][positive_index] for t in range(n_templates)]) for g, i in members])
    labels = np.array([g for g, _ in members])
    names = list(groups)

    def spread(assignment) -> float:
        means = [scores[assignment == g].mean() for g in names]
        return max(means) - min(means)

    observed = spread(labels)
    if observed == 0:
        return 1.0, "permutation of members (no difference)"
    rng = np.random.default_rng(0)
    permuted = [spread(rng.permutation(labels)) for _ in range(rounds)]
    p_value = (1 + sum(value >= observed - 1e-12 for value in permuted)) / (rounds + 1)
    return float(p_value), f"permutation of {len(members)} members between groups"


@dataclass
class CounterfactualConfig(AuditConfig):
    substitute_in_data: bool = False  # also swap identity terms inside the test texts (gender, race)


class CounterfactualAudit:
    def __init__(self, cfg: CounterfactualConfig, run):
        self.cfg = cfg
        self.run = run
        self.policy = load_policy(run.config.audit.policy)

    def audit(self, evaluation) -> dict[str, Any]:
        labels = evaluation.data.label_names
        positive = self.run.config.audit.positive_label or labels[-1]
        report = counterfactual_audit(evaluation.predict_proba, labels, positive, self.policy)
        if self.cfg.substitute_in_data:
            from tunewright.governance.audits.substitution import substitution_audit

            texts = [row["text"] for row in evaluation.test_predictions]
            substituted = substitution_audit(evaluation.predict_proba, texts, labels.index(positive), self.policy)
            report["data_substitution"] = substituted
            if substituted["verdict"] != "insufficient_data":  # texts without identity terms change nothing
                report["verdict"] = worst([report["verdict"], substituted["verdict"]])
            report["reasons"] += [r for a in substituted["attributes"].values() for r in a["reasons"] if a["verdict"] != "pass"]
        return report


@hookimpl
def tunewright_register_audits(registry):
    registry.add("counterfactual", CounterfactualAudit, schema=CounterfactualConfig,
                 description="identity-term probes: flip rate, demographic parity, paired significance test")  # fmt: skip
