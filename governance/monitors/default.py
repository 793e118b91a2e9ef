"""``monitor=default``: input descriptors, embeddings, predictions and accuracy, for text
and image classifiers.

At the end of training it records the run's reference profile (see
:mod:`~tunewright.governance.monitors.reference`). ``tunewright monitor`` then hands it
each new batch: the batch is compared with the reference as a whole or in consecutive
windows (``monitor.window``), per sensitive group when the data carries them, and a
drifted labelled batch with sensitive features gets the group bias audit re-run on it.
"""

from __future__ import annotations

import time
from typing import Any

from tunewright import hookimpl
from tunewright.contracts import Example, Monitor
from tunewright.governance.audits.group_metrics import group_metrics
from tunewright.governance.monitors.drift import compare
from tunewright.governance.monitors.drift_report import write_drift_report
from tunewright.governance.monitors.reference import Observed, load_reference, observe, record_reference
from tunewright.governance.policy import favourable_label, load_policy

# 2: inconclusive layers and columns with notes; histograms of numeric columns; the
#    bias audit of a drifted batch in the shape of governance/results.py.
SCHEMA_VERSION = 2
LAYER_ORDER = ("descriptors", "embeddings", "predictions", "performance")


def judge(layers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Overall verdict from the layers: drift, its severity, and whether to retrain.

    Severity: ``high`` when accuracy fell or three layers drifted, ``medium`` for two,
    ``low`` for one. Retraining is recommended when accuracy fell, or when the input
    shift reached the model (embeddings) and changed what it predicts (predictions).
    """
    drifted = [name for name in LAYER_ORDER if layers[name]["drifted"]]
    unresolved = [name for name in LAYER_ORDER if layers[name].get("inconclusive")]
    severity = "none"
    if drifted:
        severity = (
            "high" if "performance" in drifted or len(drifted) >= 3 else ("medium" if len(drifted) == 2 else "low")
        )
    retrain = "performance" in drifted or {"embeddings", "predictions"} <= set(drifted)
    return {
        "status": "drift" if drifted else "no_drift",
        "drift_detected": bool(drifted),
        "severity": severity,
        "drifted_layers": drifted,
        "inconclusive_layers": unresolved,
        "retrain_recommended": retrain,
        "reasons": [_reason(name, layers[name]) for name in drifted],
        "notes": [_note(name, layers[name]) for name in unresolved],
    }


def _note(name: str, layer: dict[str, Any]) -> str:
    """Why a layer is inconclusive, and what would settle it."""
    if name == "performance":
        return (
            f"performance inconclusive: accuracy fell by {layer['score']:.3f} (limit {layer['threshold']}), "
            f"but not significantly (p = {layer['p_value']:.3g}); a larger labelled batch would settle it"
        )
    if name == "embeddings":
        return (
            f"embeddings inconclusive: {layer['method']} score {layer['score']:.3f} is above the method's usual "
            f"limit but within what chance gives this few rows ({layer['threshold']}); a larger batch would settle it"
        )
    columns = ", ".join(
        f"{c} (effect {layer['columns'][c]['score']:.3f}, p={layer['columns'][c]['p_value']:.2g})"
        for c in layer["inconclusive_columns"]
    )
    return f"{name} inconclusive: {columns}; near the limits of size or significance, a larger batch would settle it"


def _reason(name: str, layer: dict[str, Any]) -> str:
    if name == "performance":
        return f"performance: accuracy fell by {layer['score']:.3f} (limit {layer['threshold']})"
    if name == "embeddings":
        return f"embeddings: {layer['method']} score {layer['score']:.3f} > {layer['threshold']}"
    shifted = ", ".join(
        f"{column} (effect {layer['columns'][column]['score']:.3f}, p={layer['columns'][column]['p_value']:.2g})"
        for column in layer["drifted_columns"]
    )
    return f"{name}: {shifted}"


def insufficient(rows: int, min_rows: int) -> dict[str, Any]:
    return {
        "status": "insufficient_data",
        "drift_detected": False,
        "severity": "none",
        "drifted_layers": [],
        "inconclusive_layers": [],
        "retrain_recommended": False,
        "reasons": [f"{rows} rows; at least monitor.min_rows={min_rows} are needed"],
        "notes": [],
    }


class DefaultMonitor(Monitor):
    inputs = ("text", "image", "audio")  # descriptors exist for each (see descriptors.py)
    needs_probabilities = False  # without them (a language model, a tagger): descriptors and embeddings only

    def __init__(self, cfg, run):
        self.run = run
        self.settings = run.config.monitor

    def record_baseline(self, evaluation) -> dict[str, Any]:
        return record_reference(evaluation, self.settings.reference_size, self.run.config.seed)

    def check(
        self, predictor, examples: list[Example], name: str, settings, sources: list[dict[str, str]]
    ) -> dict[str, Any]:
        """Run ``predictor`` over ``examples`` and compare what it makes of them with the
        run's reference; write ``reports/drift-<name>.{json,html}``."""
        batch = observe(predictor, examples, predictor.label_names)
        profile, reference = load_reference(self.run.folder.path)
        label_names = profile["label_names"]
        size = settings.window if settings.window > 0 else max(len(batch), 1)
        windows, snapshots = [], []
        for index, start in enumerate(range(0, max(len(batch), 1), size)):
            window = batch.subset(list(range(start, min(start + size, len(batch)))))
            result, snapshot = self._window(reference, window, label_names, settings)
            windows.append({"index": index, "start_row": start, "rows": len(window), **result})
            snapshots.append(snapshot)
        report = {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run.run_id,
            "name": name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "sources": sources,
            "rows": len(batch),
            "reference": {"rows": profile["rows"], "metrics": profile["metrics"]},
            "settings": {key: settings[key] for key in settings if key != "names"},
            **_overall(windows),
            "windows": windows,
        }
        report["files"] = write_drift_report(self.run.folder.path, report, snapshots)
        return report

    def _window(self, reference: Observed, window: Observed, label_names, settings):
        if len(window) < settings.min_rows:
            return insufficient(len(window), settings.min_rows), None
        comparison = compare(reference, window, label_names, settings)
        result = {**judge(comparison.layers), "layers": comparison.layers}
        result["groups"] = self._groups(reference, window, label_names, settings)
        result["bias_audit"] = self._bias_audit(window, label_names) if result["drift_detected"] else None
        return result, comparison.snapshot

    def _groups(self, reference: Observed, window: Observed, label_names, settings) -> list[dict[str, Any]]:
        """Drift of each sensitive group's rows against the whole reference."""
        if window.sensitive is None:
            return []
        groups = []
        for column in sorted({c for row in window.sensitive for c in row}):
            for value in sorted({str(row.get(column)) for row in window.sensitive}):
                members = [i for i, row in enumerate(window.sensitive) if str(row.get(column)) == value]
                entry = {"column": column, "group": value, "rows": len(members)}
                if len(members) < settings.min_rows:
                    groups.append({**entry, **insufficient(len(members), settings.min_rows), "suppressed": True})
                    continue
                layers = compare(reference, window.subset(members), label_names, settings).layers
                groups.append({**entry, **judge(layers), "scores": {k: layers[k].get("score") for k in LAYER_ORDER}})
        return groups

    def _bias_audit(self, window: Observed, label_names: list[str]) -> dict[str, Any] | None:
        """The group bias audit on a drifted batch's labelled rows, when they carry
        sensitive features."""
        window = window.labelled()
        if window is None or window.sensitive is None or window.predictions is None:
            return None
        import pandas as pd

        config = self.run.config.audit
        features = pd.DataFrame([{c: str(v) for c, v in row.items()} for row in window.sensitive])
        positive = favourable_label(label_names, config.positive_label)
        return group_metrics(
            window.labels, window.predictions, features, positive, load_policy(config.policy)
        ).to_dict()


def _overall(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """The batch's verdict: drift when any window drifted; the worst severity."""
    ranks = ["none", "low", "medium", "high"]
    judged = [w for w in windows if w["status"] != "insufficient_data"]
    if not judged:
        return {
            key: windows[0][key]
            for key in ("status", "drift_detected", "severity", "retrain_recommended", "reasons", "notes")
        }
    drifted = [w for w in judged if w["drift_detected"]]
    prefix = len(windows) > 1
    return {
        "status": "drift" if drifted else "no_drift",
        "drift_detected": bool(drifted),
        "severity": max((w["severity"] for w in judged), key=ranks.index),
        "retrain_recommended": any(w["retrain_recommended"] for w in judged),
        "reasons": [f"window {w['index']}: {r}" if prefix else r for w in drifted for r in w["reasons"]],
        "notes": [f"window {w['index']}: {n}" if prefix else n for w in judged for n in w.get("notes", [])],
    }


@hookimpl
def tunewright_register_monitors(registry):
    registry.add(
        "default",
        DefaultMonitor,
        description="evidently drift of input descriptors, embeddings, predictions and accuracy",
    )
