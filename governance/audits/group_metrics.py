"""``group_metrics``: fairlearn's ``MetricFrame`` over the test predictions, by the
sensitive-feature columns the data config declares (``data.sensitive_columns``).

Per group: size, accuracy and, where a favourable label is known (binary tasks, or
``audit.positive_label``), the rate of predicting it (selection rate) and true and
false positive rates, each with a bootstrap 95% interval. Several columns give
intersectional groups. Groups smaller than the policy's ``min_group_size`` are reported
as suppressed and left out of the disparities, never silently dropped. Disparities
(highest minus lowest, lowest over highest) between the remaining groups feed the
policy's ``accuracy_gap`` and ``demographic_parity_ratio`` checks, each with a
bootstrap interval and a Fisher exact test between the two extreme groups; the
predicted-label distributions of any label set feed ``label_distribution_distance``,
tested by permuting rows between groups. Small-sample noise is not called bias.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tunewright import hookimpl
from tunewright.contracts import Audit
from tunewright.errors import ConfigError
from tunewright.governance import statistics
from tunewright.governance.mitigation import CONSTRAINTS, optimize_thresholds
from tunewright.governance.policy import Policy, favourable_label, load_policy
from tunewright.governance.results import AuditResult, Check, audit_verdict, not_applicable
from tunewright.schema import AuditConfig, knob


def group_metrics(
    y_true: list[str], y_pred: list[str], features, positive: str | None, policy: Policy, n_boot: int = 200
) -> AuditResult:
    """The audit's result for labels ``y_true``, predictions ``y_pred`` and one row of
    ``features`` (a pandas DataFrame) per example; ``positive`` (binary tasks, or a
    named favourable label) adds selection and true/false positive rates."""
    import pandas as pd
    from fairlearn.metrics import MetricFrame, count, false_positive_rate, selection_rate, true_positive_rate

    truth, predicted = np.asarray(y_true), np.asarray(y_pred)
    is_pos = lambda labels: (labels == positive).astype(int)  # noqa: E731
    metrics = {"accuracy": lambda t, p: float(np.mean(t == p))}
    if positive is not None:
        metrics.update(
            {
                "selection_rate": lambda t, p: selection_rate(is_pos(t), is_pos(p)),
                "true_positive_rate": lambda t, p: (
                    true_positive_rate(is_pos(t), is_pos(p)) if is_pos(t).any() else np.nan
                ),
                "false_positive_rate": lambda t, p: (
                    false_positive_rate(is_pos(t), is_pos(p)) if (1 - is_pos(t)).any() else np.nan
                ),
            }
        )
    frame = MetricFrame(metrics=metrics, y_true=truth, y_pred=predicted, sensitive_features=features)
    intervals = MetricFrame(
        metrics=metrics,
        y_true=truth,
        y_pred=predicted,
        sensitive_features=features,
        n_boot=n_boot,
        ci_quantiles=[0.025, 0.975],
        random_state=0,
    ).by_group_ci
    sizes = MetricFrame(metrics={"n": count}, y_true=truth, y_pred=predicted, sensitive_features=features).by_group["n"]
    keys = [_group_name(list(features.columns), tuple(row)) for row in features.itertuples(index=False)]

    groups = []
    for position, key in enumerate(frame.by_group.index):
        row = frame.by_group.loc[key]
        name = _group_name(frame.by_group.index.names, key)
        entry = {
            "subject": ", ".join(features.columns),
            "group": name,
            "size": int(sizes.loc[key]),
            "suppressed": int(sizes.loc[key]) < policy.min_group_size,
        }
        for metric in metrics:
            value = row[metric]
            low, high = intervals[0].iloc[position][metric], intervals[1].iloc[position][metric]
            entry[metric] = None if pd.isna(value) else float(value)
            entry[f"{metric}_ci"] = None if pd.isna(low) else [float(low), float(high)]
        groups.append(entry)

    columns = [["accuracy", "accuracy"]] + ([["selection_rate", f"rate of {positive}"]] if positive is not None else [])
    result = AuditResult(
        "group_metrics",
        "pass",
        columns=columns,
        groups=groups,
        details={
            "sensitive_features": list(features.columns),
            "positive_label": positive,
            "overall": {m: (None if pd.isna(v) else float(v)) for m, v in frame.overall.items()},
            "suppressed_groups": [g["group"] for g in groups if g["suppressed"]],
        },
    )
    eligible = [g for g in groups if not g["suppressed"]]
    if len(eligible) < 2:
        reason = f"fewer than two groups with at least {policy.min_group_size} test examples"
        result.checks = [
            Check(
                ", ".join(features.columns),
                "accuracy_gap",
                None,
                {},
                None,
                None,
                "inconclusive",
                "",
                reason,
                settle=f"at least {policy.min_group_size} test rows in two or more groups",
            )
        ]
        result.verdict, result.reasons = "inconclusive", [reason]
        return result
    rows = {g["group"]: np.array([k == g["group"] for k in keys]) for g in eligible}
    correct = truth == predicted
    disparities, checks = {}, []
    for metric, check in (("accuracy", "accuracy_gap"), ("selection_rate", "demographic_parity_ratio")):
        if metric not in metrics:
            continue
        low, high = min(eligible, key=lambda g: g[metric]), max(eligible, key=lambda g: g[metric])
        difference = high[metric] - low[metric]
        ratio = 1.0 if high[metric] == 0 else low[metric] / high[metric]
        disparities[metric] = {
            "difference": difference,
            "ratio": ratio,
            "lowest": low["group"],
            "highest": high["group"],
        }
        hits = correct if metric == "accuracy" else predicted == positive
        value, gap = (difference, statistics.difference) if check == "accuracy_gap" else (ratio, statistics.ratio)
        interval = statistics.two_sample_interval(
            hits[rows[low["group"]]], hits[rows[high["group"]]], gap, policy.confidence
        )
        meaning = (
            f"How much more often the model is right for {high['group']} than for {low['group']}."
            if check == "accuracy_gap"
            else f"{low['group']} is predicted {positive!r} at this fraction of {high['group']}'s rate (1: equal)."
        )
        outcome = policy.check(
            check,
            value,
            interval,
            _fisher(low, high, metric),
            f"{metric} {low['group']} vs {high['group']}",
            meaning,
            units=(min(low["size"], high["size"]), "test rows per group"),
        )
        if outcome:
            checks.append(outcome)
    labels = sorted(set(truth) | set(predicted))
    onehot = {g: np.eye(len(labels))[[labels.index(p) for p in predicted[mask]]] for g, mask in rows.items()}
    pair = statistics.largest_distance(onehot)[1]
    replicates = statistics.bootstrap_rows(onehot, lambda sample: statistics.largest_distance(sample)[0])
    smallest = min(len(v) for v in onehot.values())
    distance, interval = statistics.debiased(replicates, policy.confidence, smallest)
    outcome = policy.check(
        "label_distribution_distance",
        distance,
        interval,
        statistics.member_permutation_test(onehot),
        f"predicted labels {pair[0]} vs {pair[1]}",
        f"The share of {pair[0]}'s and {pair[1]}'s predictions that would have to change to make their labels alike, "
        "beyond what chance alone gives (0: alike).",
        units=(smallest, "test rows per group"),
    )
    if outcome:
        checks.append(outcome)
    result.details["disparities"] = disparities
    result.checks = checks
    result.verdict = audit_verdict(checks)
    result.reasons = [c.reason for c in checks if c.verdict != "pass"]
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
    mitigation: str = knob(
        "none", choices=("none", "threshold_optimizer")
    )  # threshold_optimizer: fairlearn post-processing, reported with its cost)
    constraint: str = knob("demographic_parity", choices=("demographic_parity", "equalized_odds"))  # for the mitigation


class GroupMetricsAudit(Audit):
    inputs = ("text", "image", "audio")  # it reads predictions and groups, not the inputs themselves

    def __init__(self, cfg: GroupMetricsConfig, run):
        if cfg.mitigation not in ("none", "threshold_optimizer"):
            raise ConfigError(
                f"audit.group_metrics.mitigation: {cfg.mitigation!r} is not one of none, threshold_optimizer"
            )
        if cfg.constraint not in CONSTRAINTS:
            raise ConfigError(
                f"audit.group_metrics.constraint: {cfg.constraint!r} is not one of {', '.join(CONSTRAINTS)}"
            )
        self.cfg = cfg
        self.run = run
        self.policy = load_policy(run.config.audit.policy)

    def audit(self, evaluation) -> dict[str, Any]:
        columns = list(self.run.config.data.sensitive_columns)
        if not columns:
            return not_applicable(
                "group_metrics", "no sensitive features: set data.sensitive_columns to audit groups"
            ).to_dict()
        rows = evaluation.test_predictions
        missing = [c for c in columns if any(c not in (r.get("sensitive") or {}) for r in rows)]
        if missing:
            raise ConfigError(f"data.sensitive_columns: {missing[0]!r} is missing from the test examples")
        positive = favourable_label(evaluation.data.label_names, self.run.config.audit.positive_label)
        import pandas as pd

        features = pd.DataFrame([{c: str(r["sensitive"][c]) for c in columns} for r in rows])
        result = group_metrics(
            [r["label"] for r in rows], [r["prediction"]["label"] for r in rows], features, positive, self.policy
        )
        if self.cfg.mitigation == "threshold_optimizer":
            result.details["mitigation"] = (
                self._mitigate(evaluation, rows, columns, positive)
                if positive is not None
                else {
                    "method": "threshold_optimizer",
                    "verdict": "not_applicable",
                    "reason": "set audit.positive_label: thresholds need a favourable label",
                }
            )
        return result.to_dict()

    def _mitigate(self, evaluation, rows, columns: list[str], positive: str) -> dict[str, Any]:
        """Thresholds per group fitted on the validation split, judged on the test split."""
        labels = evaluation.data.label_names
        validation = evaluation.data.splits.get("validation") or []
        if len(validation) < 2 * self.policy.min_group_size:
            return {
                "method": "threshold_optimizer",
                "verdict": "insufficient_data",
                "reason": f"{len(validation)} validation examples are too few to fit thresholds on",
            }

        def group(sensitive: dict[str, Any]) -> str:
            return ", ".join(f"{c}={sensitive[c]}" for c in columns)

        index = labels.index(positive)
        fit_scores = evaluation.predict_proba([e[evaluation.predictor.task.input_field] for e in validation])[:, index]
        fit = (
            fit_scores,
            np.array([e["label"] == index for e in validation], dtype=int),
            [group(e["sensitive"]) for e in validation],
        )
        test = (
            np.array([r["prediction"]["probabilities"][positive] for r in rows]),
            np.array([r["label"] == positive for r in rows], dtype=int),
            [group(r["sensitive"]) for r in rows],
        )
        return optimize_thresholds(fit, test, self.cfg.constraint)


@hookimpl
def tunewright_register_audits(registry):
    registry.add(
        "group_metrics",
        GroupMetricsAudit,
        schema=GroupMetricsConfig,
        description="fairlearn MetricFrame by sensitive features: accuracy, selection rate, TPR/FPR, disparities",
    )
