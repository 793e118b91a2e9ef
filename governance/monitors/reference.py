"""The reference profile every run leaves in ``reports/drift_reference/``.

``tunewright monitor`` compares new data with it, so it holds everything a comparison
needs without the training data: the held-out inputs (texts, or image paths; a seeded
sample of at most ``monitor.reference_size``) with their SHA-256, their descriptors,
the fine-tuned model's pooled embeddings, its predictions and confidences, and its
metrics on those inputs.

    profile.json            summary: sizes, label and confidence distributions, metrics
    rows.jsonl              one line per input: text (or image), label, prediction, confidence, descriptors
    embeddings.safetensors  one row per input, in rows.jsonl order
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tunewright.errors import RunFolderError
from tunewright.governance.monitors.descriptors import describe
from tunewright.predictor import softmax
from tunewright.run_folder import RunFolder, atomic_write_json, atomic_write_text

SCHEMA_VERSION = 2  # 2: inputs may be images (input_field), inputs_sha256
REFERENCE_DIR = "reports/drift_reference"
REFERENCE_SPLITS = ("validation", "test")  # held out: never trained on


@dataclass
class Observed:
    """What the model makes of a set of inputs: the numbers drift is measured on."""

    inputs: list[str]  # texts, or image paths
    labels: list[str | None] | None  # true label names where known (feedback labels only some served rows)
    predictions: list[str] | None  # None for a task without class probabilities (a language model)
    confidences: np.ndarray | None
    descriptors: dict[str, np.ndarray]
    embeddings: np.ndarray
    sensitive: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self.inputs)

    def subset(self, indices: list[int]) -> Observed:
        pick = np.asarray(indices, dtype=int)
        return Observed(
            [self.inputs[i] for i in indices],
            [self.labels[i] for i in indices] if self.labels is not None else None,
            [self.predictions[i] for i in indices] if self.predictions is not None else None,
            self.confidences[pick] if self.confidences is not None else None,
            {name: values[pick] for name, values in self.descriptors.items()},
            self.embeddings[pick],
            [self.sensitive[i] for i in indices] if self.sensitive is not None else None,
        )

    def labelled(self) -> Observed | None:
        """The rows whose true label is known (all of them for a labelled batch; those
        that got feedback for served traffic), or ``None`` when there are none."""
        if self.labels is None:
            return None
        known = [i for i, label in enumerate(self.labels) if label is not None]
        if not known:
            return None
        return self if len(known) == len(self) else self.subset(known)

    def metrics(self) -> dict[str, float] | None:
        """Accuracy and macro-F1 on the rows with a known true label, and how many those
        are; ``None`` without labels or predictions."""
        from sklearn.metrics import accuracy_score, f1_score  # here: 1.7 s of imports predict never needs

        known = self.labelled()
        if known is None or known.predictions is None:
            return None
        return {
            "accuracy": float(accuracy_score(known.labels, known.predictions)),
            "f1_macro": float(f1_score(known.labels, known.predictions, average="macro", zero_division=0)),
            "labelled_rows": len(known),
        }


def observe(predictor, examples: list[dict[str, Any]], label_names: list[str]) -> Observed:
    """Run ``predictor`` over ``examples`` once, keeping predictions and embeddings; a
    task without class probabilities gives embeddings only (its ``embed_inputs``)."""
    task = predictor.task
    inputs = [example[task.input_field] for example in examples]
    questions = [example[task.question_field] for example in examples] if task.question_field else None
    carries_groups = all("sensitive" in example for example in examples)
    sensitive = [example["sensitive"] for example in examples] if carries_groups else None
    if not task.class_probabilities:
        with predictor.exclusive():  # the model itself, outside the predictor's own methods
            embeddings = task.embed_inputs(
                predictor.model, inputs, predictor.batch_size, predictor.device, predictor.dtype
            )
        return Observed(inputs, None, None, None, describe(task, inputs, questions), embeddings, sensitive)
    logits, embeddings = predictor.outputs(inputs, embeddings=True)
    probabilities = softmax(logits)
    labelled = any(example.get("label") is not None for example in examples)
    return Observed(
        inputs,
        [None if e.get("label") is None else label_names[e["label"]] for e in examples] if labelled else None,
        [label_names[i] for i in probabilities.argmax(axis=1)],
        probabilities.max(axis=1),
        describe(task, inputs, questions),
        embeddings,
        sensitive,
    )


def record_reference(evaluation, reference_size: int, seed: int) -> dict[str, Any]:
    """Observe the run's held-out splits and write the profile; returns its summary."""
    examples = [e for split in REFERENCE_SPLITS for e in evaluation.data.splits.get(split) or []]
    if len(examples) > reference_size:
        examples = random.Random(seed).sample(examples, reference_size)
    observed = observe(evaluation.predictor, examples, evaluation.data.label_names)
    summary = {
        "schema_version": SCHEMA_VERSION,
        "run_id": evaluation.run.run_id,
        "splits": list(REFERENCE_SPLITS),
        "rows": len(observed),
        "label_names": evaluation.data.label_names,
        "input_field": evaluation.predictor.task.input_field,
        "inputs_sha256": hashlib.sha256("\n".join(observed.inputs).encode()).hexdigest(),
        "metrics": observed.metrics(),
        "prediction_distribution": (
            distribution(observed.predictions, evaluation.data.label_names)
            if observed.predictions is not None
            else None
        ),
        "mean_confidence": float(observed.confidences.mean()) if observed.confidences is not None else None,
        "descriptor_means": {name: float(values.mean()) for name, values in observed.descriptors.items()},
        "embedding_dimensions": int(observed.embeddings.shape[1]),
    }
    folder = evaluation.run.folder.path / REFERENCE_DIR
    field = summary["input_field"]
    rows = [
        {
            field: value,
            "label": label,
            "prediction": prediction,
            "confidence": None if confidence is None else float(confidence),
            "descriptors": {name: float(values[i]) for name, values in observed.descriptors.items()},
        }
        for i, (value, label, prediction, confidence) in enumerate(
            zip(
                observed.inputs,
                observed.labels or [None] * len(observed),
                observed.predictions or [None] * len(observed),
                observed.confidences if observed.confidences is not None else [None] * len(observed),
            )
        )
    ]
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {"embeddings": torch.from_numpy(np.ascontiguousarray(observed.embeddings, dtype=np.float32))},
        str(folder / "embeddings.safetensors"),
    )
    atomic_write_text(folder / "rows.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    atomic_write_json(folder / "profile.json", summary)  # last: its presence means the profile is whole
    evaluation.run.folder.record_hashes(REFERENCE_DIR)  # what tunewright monitor verifies before reading it
    return {"reference": REFERENCE_DIR, "rows": len(observed), "metrics": summary["metrics"]}


def load_reference(run_folder: Path) -> tuple[dict[str, Any], Observed]:
    """The profile summary and the reference :class:`Observed`; a clear error when absent."""
    folder = Path(run_folder) / REFERENCE_DIR
    profile_path = folder / "profile.json"
    if not profile_path.is_file():
        raise RunFolderError(
            f"{run_folder}: no drift reference ({REFERENCE_DIR}/profile.json); the run was trained with "
            "monitor=none, failed before its end, or predates drift monitoring. Retrain with monitor=default"
        )
    RunFolder(run_folder).verify_files(REFERENCE_DIR)
    summary = json.loads(profile_path.read_text(encoding="utf-8"))
    if summary.get("schema_version") != SCHEMA_VERSION:
        raise RunFolderError(f"{profile_path}: schema_version {summary.get('schema_version')} is not {SCHEMA_VERSION}")
    rows = [json.loads(line) for line in (folder / "rows.jsonl").read_text(encoding="utf-8").splitlines()]
    embeddings = load_file(str(folder / "embeddings.safetensors"))["embeddings"].numpy()
    if len(rows) != len(embeddings):
        raise RunFolderError(f"{folder}: rows.jsonl has {len(rows)} rows but embeddings.safetensors {len(embeddings)}")
    labelled = all(row["label"] is not None for row in rows)
    predicted = all(row["prediction"] is not None for row in rows)  # not for a task without class probabilities
    return summary, Observed(
        [row[summary["input_field"]] for row in rows],
        [row["label"] for row in rows] if labelled and predicted else None,
        [row["prediction"] for row in rows] if predicted else None,
        np.asarray([row["confidence"] for row in rows]) if predicted else None,
        {name: np.asarray([row["descriptors"][name] for row in rows]) for name in rows[0]["descriptors"]},
        embeddings,
    )


def distribution(labels: list[str], label_names: list[str]) -> dict[str, float]:
    """Each label's share of ``labels``."""
    total = max(len(labels), 1)
    return {name: sum(label == name for label in labels) / total for name in label_names}
