"""Opt-in post-processing against a group disparity: fairlearn's ``ThresholdOptimizer``.

It picks a decision threshold per sensitive group on the model's positive-label
scores so that a fairness constraint holds (``demographic_parity``: equal selection
rates; ``equalized_odds``: equal true and false positive rates) at the best accuracy
left. Thresholds are fitted on the validation split and judged on the test split, and
the result states what it costs: accuracy and disparities before and after. The
decision is positive label versus the rest, so a multi-class model is judged on its
positive label. Using it at inference needs each input's sensitive feature; the fitted
thresholds are in the report for that.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CONSTRAINTS = ("demographic_parity", "equalized_odds")


def _fixed_scores():
    """A "prefit estimator" whose input already is the model's positive-label score."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    class FixedScores(ClassifierMixin, BaseEstimator):
        def __init__(self):
            self.fitted_ = True  # what sklearn's check_is_fitted looks for

        def fit(self, X, y):  # noqa: N803 - sklearn's signature
            return self

        def predict_proba(self, X):  # noqa: N803
            scores = np.asarray(X, dtype=float)[:, 0]
            return np.stack([1 - scores, scores], axis=1)

    return FixedScores()


def optimize_thresholds(
    validation: tuple[np.ndarray, np.ndarray, list[str]],
    test: tuple[np.ndarray, np.ndarray, list[str]],
    constraint: str,
) -> dict[str, Any]:
    """Fit on ``validation`` and apply to ``test``; each is (positive-label scores,
    true positive flags, group per example)."""
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
    from fairlearn.postprocessing import ThresholdOptimizer

    (fit_scores, fit_truth, fit_groups), (scores, truth, groups) = validation, test
    optimizer = ThresholdOptimizer(
        estimator=_fixed_scores(),
        constraints=constraint,
        objective="accuracy_score",
        prefit=True,
        predict_method="predict_proba",
    )
    optimizer.fit(fit_scores.reshape(-1, 1), fit_truth, sensitive_features=fit_groups)
    before = (scores >= 0.5).astype(int)
    after = np.asarray(optimizer.predict(scores.reshape(-1, 1), sensitive_features=groups, random_state=0))

    def summary(predicted: np.ndarray) -> dict[str, Any]:
        return {
            "accuracy": float(np.mean(predicted == truth)),
            "demographic_parity_difference": float(
                demographic_parity_difference(truth, predicted, sensitive_features=groups)
            ),
            "equalized_odds_difference": float(equalized_odds_difference(truth, predicted, sensitive_features=groups)),
            "selection_rate": {g: float(predicted[np.asarray(groups) == g].mean()) for g in sorted(set(groups))},
        }

    result_before, result_after = summary(before), summary(after)
    return {
        "method": "threshold_optimizer",
        "constraint": constraint,
        "fitted_on": "validation",
        "before": result_before,
        "after": result_after,
        "accuracy_cost": result_before["accuracy"] - result_after["accuracy"],
        "thresholds": {
            str(group): _rule(rule) for group, rule in optimizer.interpolated_thresholder_.interpolation_dict.items()
        },
    }


def _rule(rule: dict[str, Any]) -> list[dict[str, Any]]:
    """A group's randomised rule: with probability ``p``, predict positive when the score
    passes ``operator threshold``."""
    return [
        {
            "p": float(rule[f"p{i}"]),
            "operator": rule[f"operation{i}"].operator,
            "threshold": float(rule[f"operation{i}"].threshold),
        }
        for i in (0, 1)
        if f"p{i}" in rule
    ]


def mitigation_summary(result: dict[str, Any]) -> str:
    """One sentence for reports and the model card."""
    if "before" not in result:
        return f"Mitigation ({result['method']}): {result.get('reason', result.get('verdict', 'not applied'))}."
    before, after = result["before"], result["after"]
    return (
        f"Mitigation ({result['method']}, {result['constraint']}, thresholds fitted on the {result['fitted_on']} split), "
        f"on the test split: accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f}, demographic parity "
        f"difference {before['demographic_parity_difference']:.3f} -> {after['demographic_parity_difference']:.3f}, "
        f"equalized odds difference {before['equalized_odds_difference']:.3f} -> {after['equalized_odds_difference']:.3f}."
    )
