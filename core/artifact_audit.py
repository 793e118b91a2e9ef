"""The run's bias audits, run again on an edge artifact: the release decision for what ships.

Quantisation changes probabilities, and a changed probability can move a group's
accuracy or flip a counterfactual pair. So an ONNX export is audited as the run was:
the same audits, built from the run's config, under its policy, on the run's test
split (``test_predictions.jsonl`` keeps every test example with its sensitive columns)
with the artifact's own predictions, and the probes answered by the artifact on
onnxruntime. Nothing of the run's own record changes: ``reports/bias.*`` stays the
run's; the artifact's verdicts and decision go into its ``edge.json`` and model card.

The validation split is not kept in a run folder, so a mitigation that fits on it
(``audit.group_metrics.mitigation``) is not fitted again; the verdicts do not rest on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tunewright.contracts import Evaluation
from tunewright.data import DomainData
from tunewright.edge_predictor import EdgePredictor
from tunewright.pipeline import NO_DECISION, governance_parts
from tunewright.plugin_manager import get_plugins
from tunewright.run import Run
from tunewright.run_folder import RunFolder


@dataclass
class ShippedModel:
    """The artifact where audits expect a predictor: its probabilities, the run's task."""

    task: Any
    artifact: EdgePredictor

    def probabilities(self, inputs: list[str]) -> np.ndarray:
        return self.artifact.probabilities(inputs)


def audit_artifact(
    run_folder: RunFolder, task, artifact: EdgePredictor, rows: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """Each of the run's audits on ``artifact``: ``{"verdicts", "run_verdicts", "release"}``
    (``release`` as ``tunewright_release_decision`` gives it); ``None`` when the run has
    no audit that applies to its task. ``rows`` are the run's test rows with the
    artifact's predictions, as the export's check made them."""
    plugins = get_plugins()
    run = Run(run_folder.path.name, run_folder.read_config(), run_folder)
    audits = governance_parts(run, task, plugins, families=("audits",))["audits"]
    if not audits:
        return None
    label_names = artifact.label_names
    examples = [{**row, "label": label_names.index(row["label"])} for row in rows]
    evaluation = Evaluation(run, ShippedModel(task, artifact), DomainData({"test": examples}, label_names), {}, rows)
    results = {name: audit.audit(evaluation) for name, audit in audits.items()}
    decision = plugins.hook.tunewright_release_decision(run=run, results=results) or NO_DECISION
    recorded = run_folder.read_json("reports/bias.json") or {}
    return {
        "verdicts": {name: result["verdict"] for name, result in results.items()},
        "run_verdicts": {name: audit["verdict"] for name, audit in recorded.get("audits", {}).items()},
        "release": decision,
    }
