"""``group_metrics``: fairlearn's ``MetricFrame`` over the test predictions, by the
sensitive-feature columns the data config declares (``data.sensitive_columns``).

Per group: size, accuracy, the rate of predicting the positive label (selection rate),
true and false positive rates, each with a bootstrap 95% interval. Several columns give
intersectional groups. Groups smaller than the policy's ``min_group_size`` are reported
as suppressed and left out of the disparities, never silently dropped. Disparities
(highest minus lowest, lowest over highest) between the remaining groups feed the
policy's ``accuracy_gap`` and ``demographic_parity_ratio`` checks, each with a Fisher
exact test between the two extreme groups so that small-sample noise is not called bias.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tunewright import hookimpl
from tunewright.errors import ConfigError
from tunewright.governance.mitigation import CONSTRAINTS, optimize_thresholds
from tunewright.governance.policy import Policy, load_policy, worst
from tunewright.schema import AuditConfig, knob


def group_metrics(
    y_true: list[str], y_pred: list[str], features, positive: str, policy: Policy, n_boot: int = 200
) -> dict[str, Any]:
    """The audit's result for labels ``y_true``, predictions ``y_pred`` and one row of
    ``features`` (a pandas DataFrame) per example."""
    import pandas as pd
    from fairlearn.metrics import MetricFrame, count, false_positive_rate, selection_rate, true_positive_rate

    truth, predicted = np.asarray(y_true), np.asarray(y_pred)
    is_pos = lambda labels: (labels == positive).astype(int)  # noqa: E731
    metrics = {
        "accuracy": lambda t, p: float(np.mean(t == p)),
        "selection_rate": lambda t, p: selection_rate(is_pos(t), is_pos(p)),
        "true_positive_rate": lambda t, p: true_positive_rate(is_pos(t), is_pos(p)) if is_pos(t).any() else np.nan,
        "false_positive_rate": lambda t, p: false_positive_rate(is_pos(t), is_pos(p)) if (1 - is_pos(t)).any() else np.nan,
    }
    frame = MetricFrame(metrics=metrics, y_true=truth, y_pred=predicted, sensitive_features=features)
    intervals = MetricFrame(
        metrics=metrics, y_true=truth, y_pred=predicted, sensitive_features=features,
        n_boot=n_boot, ci_quantiles=[0.025, 0.975], random_state=0,
    ).by_group_ci  # fmt: skip
    sizes = MetricFrame(metrics={"n": count}, y_true=truth, y_pred=predicted, sensitive_features=features).by_group["n"]

    groups = []
    for position, key in enumerate(frame.by_group.index):
        row = frame.by_group.loc[key]
        name = _group_name(frame.by_group.index.names, key)
        entry = {"group": name, "size": int(sizes.loc[key]), "suppressed": int(sizes.loc[key]) < policy.min_group_size}
        for metric in metrics:
            value = row[metric]
            low, high = intervals[0].iloc[position][metric], intervals[1].iloc[position][metric]
            entry[metric] = None if pd.isna(value) else float(value)
            entry[f"{metric}_ci"] = None if pd.isna(low) else [float(low), float(high)]
        groups.append(entry)

    eligible = [g for g in groups if not g["suppressed"]]
    result: dict[str, Any] = {
        "audit": "group_metrics",
        "sensitive_features": list(features.columns),
        "positive_label": positive,
        "overall": {m: (None if pd.isna(v) else float(v)) for m, v in frame.overall.items()},
        "groups": groups,
        "suppressed_groups": [g["group"] for g in groups if g["suppressed"]],
    }
    if len(eligible) < 2:
        result.update(disparities={}, checks=[], verdict="insufficient_data",
                      reasons=[f"fewer than two groups with at least {policy.min_group_size} examples"])  # fmt: skip
        return result

    disparities, checks = {}, []
    for metric, check in (("accuracy", "accuracy_gap"), ("selection_rate", "demographic_parity_ratio")):
        low, high = min(eligible, key=lambda g: g[metric]), max(eligible, key=lambda g: g[metric])
        difference = high[metric] - low[metric]
        ratio = 1.0 if high[metric] == 0 else low[metric] / high[metric]
        disparities[metric] = {"difference": difference, "ratio": ratio, "lowest": low["group"], "highest": high["group"]}
        p_value = _fisher(low, high, metric)
        outcome = policy.check(check, difference if check == "accuracy_gap" else ratio, p_value,
                               subject=f"{metric} {low['group']} vs {high['group']}")  # fmt: skip
        if outcome:
            checks.append(outcome)
    result.update(disparities=disparities, checks=checks, verdict=worst([c["verdict"] for c in checks]),
                  reasons=[c["reason"] for c in checks if c["verdict"] != "pass"])  # fmt: skip
    return result


def _fisher(a: dict, b: dict, metric: str) -> float:
    """Fisher exact test on the 2x2 table of successes of ``metric`` in groups a and b."""
    from scipy.stats import fisher_exact

    table = [[round(g[metric] * g["size"]), g["size"] - round(g[metric] * g["size"])] for g in (a, b)]
    return float(fisher_exact(table).pvalue)


def _group_name(names: list, key) -> str:
    keys = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{name}={value}" for name, value in zip(names, keys))


@dataclass
class GroupMetricsConfig(AuditConfig):
    mitigation: str = knob("none", choices=("none", "threshold_optimizer"))  # threshold_optimizer: fairlearn post-processing, reported with its cost)
    constraint: str = knob("demographic_parity", choices=("demographic_parity", "equalized_odds"))  # for the mitigation


class GroupMetricsAudit:
    inputs = ("text", "image")  # it reads predictions and groups, not the inputs themselves

    def __init__(self, cfg: GroupMetricsConfig, run):
        if cfg.mitigation not in ("none", "threshold_optimizer"):
            raise ConfigError(f"audit.group_metrics.mitigation: {cfg.mitigation!r} is not one of none, threshold_optimizer")
        if cfg.constraint not in CONSTRAINTS:
            raise ConfigError(f"audit.group_metrics.constraint: {cfg.constraint!r} is not one of {', '.join(CONSTRAINTS)}")
        self.cfg = cfg
        self.run = run
        self.policy = load_policy(run.config.audit.policy)

    def audit(self, evaluation) -> dict[str, Any]:
        columns = list(self.run.config.data.sensitive_columns)
        if not columns:
            return {"audit": "group_metrics", "verdict": "insufficient_data", "groups": [], "checks": [],
                    "reasons": ["no sensitive features: set data.sensitive_columns to audit groups"]}  # fmt: skip
        rows = evaluation.test_predictions
        missing = [c for c in columns if any(c not in (r.get("sensitive") or {}) for r in rows)]
        if missing:
            raise ConfigError(f"data.sensitive_columns: {missing[0]!r} is missing from the test examples")
        labels = evaluation.data.label_names
        positive = self.run.config.audit.positive_label or labels[-1]
        if positive not in labels:
            raise ConfigError(f"audit.positive_label: {positive!r} is not one of {', '.join(labels)}")
        import pandas as pd

        features = pd.DataFrame([{c: str(r["sensitive"][c]) for c in columns} for r in rows])
        result = group_metrics([r["label"] for r in rows], [r["prediction"]["label"] for r in rows], features, positive, self.policy)
        if self.cfg.mitigation == "threshold_optimizer":
            result["mitigation"] = self._mitigate(evaluation, rows, columns, positive)
        return result

    def _mitigate(self, evaluation, rows, columns: list[str], positive: str) -> dict[str, Any]:
        """Thresholds per group fitted on the validation split, judged on the test split."""
        labels = evaluation.data.label_names
        validation = evaluation.data.splits.get("validation") or []
        if len(validation) < 2 * self.policy.min_group_size:
            return {"method": "threshold_optimizer", "verdict": "insufficient_data",
                    "reason": f"{len(validation)} validation examples are too few to fit thresholds on"}  # fmt: skip

        def group(sensitive: dict[str, Any]) -> str:
            return ", ".join(f"{c}={sensitive[c]}" for c in columns)

        index = labels.index(positive)
        fit_scores = evaluation.predict_proba([e[evaluation.predictor.task.input_field] for e in validation])[:, index]
        fit = (fit_scores, np.array([e["label"] == index for e in validation], dtype=int), [group(e["sensitive"]) for e in validation])
        test = (np.array([r["prediction"]["probabilities"][positive] for r in rows]),
                np.array([r["label"] == positive for r in rows], dtype=int), [group(r["sensitive"]) for r in rows])  # fmt: skip
        return optimize_thresholds(fit, test, self.cfg.constraint)


@hookimpl
def tunewright_register_audits(registry):
    registry.add("group_metrics", GroupMetricsAudit, schema=GroupMetricsConfig,
                 description="fairlearn MetricFrame by sensitive features: accuracy, selection rate, TPR/FPR, disparities")  # fmt: skip
