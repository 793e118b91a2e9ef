"""Compare an observed batch with the reference profile, layer by layer, with evidently.

Evidently's raw values mean different things per method: a p-value (lower is more
drift) for Kolmogorov-Smirnov and chi-square, a distance (higher is more drift) for
Wasserstein and Jensen-Shannon, a ROC AUC for the embedding domain classifier. This
module turns them into one shape per layer: ``score`` and ``threshold`` where a higher
score is more drift, and ``drifted`` true when the score exceeds the threshold. A
descriptor or prediction shift drifts only when it is both significant (p-value below
``monitor.significance``) and large (effect above ``monitor.effect_size``), so a big
batch does not raise alarms over trivial differences.

Layers: ``descriptors`` (text or image statistics, no model needed), ``embeddings`` (the
fine-tuned model's representation), ``predictions`` (label distribution and
confidence) and, for a labelled batch, ``performance`` (accuracy change).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tunewright.governance.monitors.reference import Observed, distribution

EMBEDDING_METHODS = {"model": 0.55, "mmd": 0.015}  # method: evidently's default threshold
NEAR = 0.8  # a significant shift this close to the effect size (a fraction of it) is inconclusive
EMBEDDING_PCA_COMPONENTS = 20  # fewer dimensions: the domain classifier does not overfit small batches
PREDICTED, CONFIDENCE = "predicted_label", "confidence"


@dataclass
class DriftComparison:
    """The normalised layers, and evidently's snapshot for the detailed HTML page."""

    layers: dict[str, dict[str, Any]]
    snapshot: Any


def compare(reference: Observed, current: Observed, label_names: list[str], settings) -> DriftComparison:
    """Every layer of drift between ``reference`` and ``current`` (``settings`` is the
    ``monitor`` config node)."""
    from evidently import Report

    names = list(reference.descriptors)  # the text or the image descriptors, whichever the run recorded
    predicts = reference.predictions is not None and current.predictions is not None  # class probabilities
    numeric = [*names, CONFIDENCE] if predicts else names
    components = min(EMBEDDING_PCA_COMPONENTS, len(reference), len(current), reference.embeddings.shape[1])
    metrics, keys = _metrics(numeric, settings, components, predicts)
    snapshot = Report(metrics).run(_dataset(current, numeric), _dataset(reference, numeric))
    values = dict(zip(keys, (m["value"] for m in snapshot.dict()["metrics"])))
    # Bonferroni: a layer of k columns tests each at significance / k, so the layer as a
    # whole keeps the chosen false-alarm rate.
    descriptor_alpha, prediction_alpha = settings.significance / len(names), settings.significance / 2
    descriptors = {name: _numeric_shift(name, values, reference, current, settings, descriptor_alpha) for name in names}
    if predicts:
        predictions = _layer(
            {
                "label_distribution": _label_shift(values, reference, current, label_names, settings, prediction_alpha),
                "confidence": _numeric_shift(CONFIDENCE, values, reference, current, settings, prediction_alpha),
            },
            settings.effect_size,
        )
    else:
        predictions = {"available": False, "drifted": False, "reason": "the task gives no class probabilities"}
    layers = {
        "descriptors": _layer(descriptors, settings.effect_size),
        "embeddings": _embedding_layer(values["embeddings"], settings, len(reference), len(current)),
        "predictions": predictions,
        "performance": _performance_layer(reference, current, settings),
    }
    return DriftComparison(layers, snapshot)


def _metrics(numeric: list[str], settings, components: int, predicts: bool) -> tuple[list, list[tuple[str, str] | str]]:
    """The evidently metrics to run, and the key each one's value is filed under."""
    from evidently.metrics import ValueDrift
    from evidently.metrics.embeddings import EmbeddingsDrift, MMDDriftMethod, ModelDriftMethod

    metrics, keys = [], []
    for column in numeric:
        for method in ("ks", "wasserstein"):
            metrics.append(ValueDrift(column=column, method=method))
            keys.append((column, method))
    for method in ("chisquare", "jensenshannon") if predicts else ():
        metrics.append(ValueDrift(column=PREDICTED, method=method))
        keys.append((PREDICTED, method))
    method_class = {"model": ModelDriftMethod, "mmd": MMDDriftMethod}[settings.embedding_method]
    drift_method = method_class(threshold=embedding_threshold(settings), bootstrap=False, pca_components=components)
    metrics.append(EmbeddingsDrift(embeddings_name="embeddings", drift_method=drift_method))
    keys.append("embeddings")
    return metrics, keys


def embedding_threshold(settings) -> float:
    from tunewright.errors import ConfigError

    if settings.embedding_method not in EMBEDDING_METHODS:
        raise ConfigError(
            f"monitor.embedding_method: {settings.embedding_method!r} is not one of {', '.join(EMBEDDING_METHODS)}"
        )
    if settings.embedding_threshold is not None:
        return float(settings.embedding_threshold)
    return EMBEDDING_METHODS[settings.embedding_method]


def _dataset(observed: Observed, numeric: list[str]):
    import pandas as pd
    from evidently import DataDefinition, Dataset

    frame = pd.DataFrame({name: observed.descriptors[name] for name in numeric if name != CONFIDENCE})
    categorical = []
    if CONFIDENCE in numeric:
        frame[CONFIDENCE] = observed.confidences
        frame[PREDICTED] = observed.predictions
        categorical = [PREDICTED]
    embedding_columns = [f"embedding_{i}" for i in range(observed.embeddings.shape[1])]
    frame = pd.concat([frame, pd.DataFrame(observed.embeddings, columns=embedding_columns)], axis=1)
    definition = DataDefinition(
        numerical_columns=numeric, categorical_columns=categorical, embeddings={"embeddings": embedding_columns}
    )
    return Dataset.from_pandas(frame, data_definition=definition)


def _numeric_shift(
    name: str, values: dict, reference: Observed, current: Observed, settings, alpha: float
) -> dict[str, Any]:
    """A numeric column's K-S p-value and normalised Wasserstein effect size."""
    source = current.confidences if name == CONFIDENCE else current.descriptors[name]
    baseline = reference.confidences if name == CONFIDENCE else reference.descriptors[name]
    return _shift(
        values[(name, "ks")],
        values[(name, "wasserstein")],
        settings,
        alpha,
        reference_mean=float(np.mean(baseline)),
        current_mean=float(np.mean(source)),
        histogram=histogram(np.asarray(baseline, dtype=float), np.asarray(source, dtype=float)),
        test="Kolmogorov-Smirnov p-value; effect: Wasserstein distance / reference std",
    )


def histogram(reference: np.ndarray, current: np.ndarray, bins: int = 12) -> dict[str, list[float]]:
    """Both samples' shares in shared bins (over the 1st to 99th percentile of the two
    together, the tails folded into the end bins), for the report's picture."""
    both = np.concatenate([reference, current])
    low, high = np.quantile(both, [0.01, 0.99])
    if high <= low:
        low, high = float(both.min()), float(both.max()) + 1e-9
    edges = np.linspace(low, high, bins + 1)

    def shares(values: np.ndarray) -> list[float]:
        counts = np.histogram(np.clip(values, low, high), bins=edges)[0]
        return [float(c) for c in counts / max(len(values), 1)]

    return {"edges": [float(e) for e in edges], "reference": shares(reference), "current": shares(current)}


def _label_shift(
    values: dict, reference: Observed, current: Observed, label_names, settings, alpha: float
) -> dict[str, Any]:
    """The predicted-label distribution's chi-square p-value and Jensen-Shannon distance."""
    return _shift(
        values[(PREDICTED, "chisquare")],
        values[(PREDICTED, "jensenshannon")],
        settings,
        alpha,
        reference=distribution(reference.predictions, label_names),
        current=distribution(current.predictions, label_names),
        test="chi-square p-value; effect: Jensen-Shannon distance",
    )


def _shift(p_value: float, effect: float, settings, alpha: float, **details) -> dict[str, Any]:
    """A column drifts when its shift is both significant (p below ``alpha``) and larger
    than the effect size. It is inconclusive when one holds and the other nearly does:
    larger than the effect size but not significant (too few rows to tell), or
    significant and within ``NEAR`` of the effect size."""
    p_value, effect = float(p_value), float(effect)
    significant, large = p_value < alpha, effect > settings.effect_size
    return {
        "score": effect,
        "threshold": settings.effect_size,
        "p_value": p_value,
        "p_threshold": alpha,
        "drifted": bool(significant and large),
        "inconclusive": bool(
            (large and not significant) or (significant and not large and effect > NEAR * settings.effect_size)
        ),
        **details,
    }


def _embedding_layer(score: float, settings, reference_rows: int, current_rows: int) -> dict[str, Any]:
    """The embedding layer. For the domain classifier, the limit also grows with the
    noise of a ROC AUC measured on few rows: evidently scores it on a random half of
    both sets, and under no drift that AUC is about normal around 0.5 with the
    Mann-Whitney standard deviation, so the score must also clear its one-sided
    ``monitor.significance`` quantile."""
    explained = {
        "model": "ROC AUC of a classifier telling reference from new embeddings (0.5: indistinguishable)",
        "mmd": "squared maximum mean discrepancy between the embedding sets",
    }
    threshold = embedding_threshold(settings)
    layer = {"score": float(score), "method": settings.embedding_method, "test": explained[settings.embedding_method]}
    if settings.embedding_method == "model":
        from scipy.stats import norm

        n1, n2 = max(reference_rows // 2, 1), max(current_rows // 2, 1)
        spread = ((n1 + n2 + 1) / (12 * n1 * n2)) ** 0.5
        threshold = max(threshold, 0.5 + float(norm.ppf(1 - settings.significance)) * spread)
        layer["p_value"] = float(norm.sf((score - 0.5) / spread))
    # Above evidently's own limit but not beyond what chance gives this few rows: inconclusive.
    inconclusive = embedding_threshold(settings) < score <= threshold
    return {
        **layer,
        "threshold": round(threshold, 4),
        "drifted": bool(score > threshold),
        "inconclusive": bool(inconclusive),
    }


def _layer(columns: dict[str, dict[str, Any]], threshold: float) -> dict[str, Any]:
    """A layer made of columns: its score is the largest effect among them."""
    drifted = [name for name, column in columns.items() if column["drifted"]]
    unresolved = [name for name, column in columns.items() if column.get("inconclusive")]
    return {
        "score": max(column["score"] for column in columns.values()),
        "threshold": threshold,
        "drifted": bool(drifted),
        "inconclusive": bool(unresolved) and not drifted,
        "drifted_columns": drifted,
        "inconclusive_columns": unresolved,
        "columns": columns,
    }


def _accuracy_drop_p_value(reference: Observed, current: Observed) -> float:
    """One-sided Fisher exact test: is the batch's accuracy lower than the reference's?"""
    from scipy.stats import fisher_exact

    def counts(observed: Observed) -> list[int]:
        known = observed.labelled()
        correct = sum(p == t for p, t in zip(known.predictions, known.labels))
        return [correct, len(known) - correct]

    return float(fisher_exact([counts(reference), counts(current)], alternative="greater").pvalue)


def _performance_layer(reference: Observed, current: Observed, settings) -> dict[str, Any]:
    """Accuracy and macro-F1 change, when both the reference and the batch have labels
    (for served traffic: the rows that got feedback, ``current.labelled_rows`` of them);
    a drop drifts when it exceeds ``monitor.accuracy_drop`` and is significant."""
    before, after = reference.metrics(), current.metrics()
    if before is None or after is None:
        return {"available": False, "drifted": False, "reason": "the batch has no labels"}
    drop = before["accuracy"] - after["accuracy"]
    p_value = _accuracy_drop_p_value(reference, current)
    return {
        "available": True,
        "score": drop,
        "threshold": settings.accuracy_drop,
        "p_value": p_value,
        "p_threshold": settings.significance,
        "drifted": bool(drop > settings.accuracy_drop and p_value < settings.significance),
        "inconclusive": bool(drop > settings.accuracy_drop and p_value >= settings.significance),
        "reference": before,
        "current": after,
        "change": {name: after[name] - before[name] for name in ("accuracy", "f1_macro")},
    }
