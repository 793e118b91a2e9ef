"""The objective every classifier shares, whatever its input: cross-entropy on a label
per example, accuracy and macro-F1, and predictions as label names with probabilities.

Text (:mod:`.sequence_classification`), image (:mod:`.image_classification`) and
image-text (:mod:`.clip`) classifiers mix it in beside their own loading and encoding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def label_head(label_names: list[str]) -> dict[str, Any]:
    """``from_pretrained`` arguments that size a classification head for ``label_names``."""
    return {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
    }


class ClassificationObjective:
    """Loss, metrics and predictions over one logit per label."""

    @staticmethod
    def loss_sum(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed cross-entropy; the trainer divides by the examples of the whole step."""
        return torch.nn.functional.cross_entropy(logits.float(), batch["labels"], reduction="sum")

    @staticmethod
    def loss_count(batch: dict[str, torch.Tensor]) -> int:
        """How many terms :meth:`loss_sum` adds up: one per labelled example."""
        return int(batch["labels"].numel())

    @staticmethod
    def metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """Loss (mean cross-entropy), accuracy and macro-F1 over one split."""
        from sklearn.metrics import f1_score  # here: scikit-learn's import is 1.7 s prediction never needs

        log_probs = torch.log_softmax(torch.from_numpy(logits).double(), dim=-1)
        loss = -log_probs[np.arange(len(labels)), labels].mean().item()
        predicted = logits.argmax(axis=-1)
        return {
            "loss": float(loss),
            "accuracy": float((predicted == labels).mean()),
            "f1_macro": float(f1_score(labels, predicted, average="macro", zero_division=0)),
        }

    def test_predictions(
        self, model, examples: list[dict[str, Any]], logits: np.ndarray, label_names: list[str], device
    ) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """Each test example with its true label's name and the prediction (from the
        evaluation's logits); no metrics beyond the evaluation's."""
        rows = [
            {**example, "label": label_names[example["label"]], "prediction": prediction}
            for example, prediction in zip(examples, self.predictions(logits, label_names))
        ]
        return rows, {}

    @staticmethod
    def predictions(logits: np.ndarray, label_names: list[str]) -> list[dict[str, Any]]:
        """``{"label", "probabilities": {name: p}}`` per row of ``logits``."""
        probabilities = torch.softmax(torch.from_numpy(logits).double(), dim=-1).numpy()
        return [
            {
                "label": label_names[int(row.argmax())],
                "probabilities": {name: float(p) for name, p in zip(label_names, row)},
            }
            for row in probabilities
        ]
