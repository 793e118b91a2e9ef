"""``kind: sequence_classification``: an encoder (BERT, MiniLM, RoBERTa, ...) with a
classification head, through transformers' ``AutoModelForSequenceClassification``.

The part knows everything task-specific: how to tokenise examples (once per run), how to
pad a batch, which metrics to report and how to turn logits into predictions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score

from tunewright import hookimpl
from tunewright.plugins.models.text_task import HubTextTask, quiet_transformers


class SequenceClassification(HubTextTask):
    """A text classifier: ``{"text", "label"}`` examples in, labels with probabilities out."""

    peft_task_type = "SEQ_CLS"  # PEFT trains and saves the head along with the adapter

    def load_pretrained(self, label_names: list[str], source: str | Path | None = None, **options):
        """The pre-trained model (or a saved full fine-tune at ``source``) with a head for
        ``label_names``; ``options`` go to ``from_pretrained`` (a method's quantisation)."""
        from transformers import AutoModelForSequenceClassification

        quiet_transformers()
        return AutoModelForSequenceClassification.from_pretrained(
            str(source or self.source),
            revision=None if source else self.cfg.revision,
            trust_remote_code=self.cfg.trust_remote_code,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
            **options,
        )

    # ------------------------------------------------------------------ data

    def encode(self, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Tokenise examples (and text pairs) once; labels are kept when present.

        Only the text fields reach the model; sensitive features stay in the examples
        for the audit."""
        texts = [example["text"] for example in examples]
        pairs = [example["text_pair"] for example in examples] if "text_pair" in examples[0] else None
        encoded = self.tokenizer(texts, pairs, truncation=True, max_length=self.cfg.max_length)
        features = []
        for i, example in enumerate(examples):
            feature = {key: values[i] for key, values in encoded.items()}
            if "label" in example:
                feature["labels"] = example["label"]
            features.append(feature)
        return features

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Pad a batch to its own longest example (dynamic padding)."""
        labels = [feature["labels"] for feature in features if "labels" in feature]
        inputs = [{k: v for k, v in feature.items() if k != "labels"} for feature in features]
        batch = self.tokenizer.pad(inputs, return_tensors="pt")
        if labels:
            batch["labels"] = torch.tensor(labels, dtype=torch.long)
        return dict(batch)

    @staticmethod
    def loss_sum(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed cross-entropy; the trainer divides by the examples of the whole step."""
        return torch.nn.functional.cross_entropy(logits.float(), batch["labels"], reduction="sum")

    @staticmethod
    def loss_count(batch: dict[str, torch.Tensor]) -> int:
        """How many terms :meth:`loss_sum` adds up: one per labelled example."""
        return int(batch["labels"].numel())

    # ------------------------------------------------------------------ evaluation

    @staticmethod
    def metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """Loss (mean cross-entropy), accuracy and macro-F1 over one split."""
        log_probs = torch.log_softmax(torch.from_numpy(logits).double(), dim=-1)
        loss = -log_probs[np.arange(len(labels)), labels].mean().item()
        predicted = logits.argmax(axis=-1)
        return {
            "loss": float(loss),
            "accuracy": float((predicted == labels).mean()),
            "f1_macro": float(f1_score(labels, predicted, average="macro", zero_division=0)),
        }

    def test_predictions(self, model, examples: list[dict[str, Any]], logits: np.ndarray, label_names: list[str],
                         device) -> tuple[list[dict[str, Any]], dict[str, float]]:  # fmt: skip
        """Each test example with its true label's name and the prediction (from the
        evaluation's logits); no metrics beyond the evaluation's."""
        rows = [{**example, "label": label_names[example["label"]], "prediction": prediction}
                for example, prediction in zip(examples, self.predictions(logits, label_names))]  # fmt: skip
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


@hookimpl
def tunewright_register_models(registry):
    registry.add(
        "sequence_classification",
        SequenceClassification,
        description="encoder + classification head (BERT, MiniLM, RoBERTa, ...): accuracy, macro-F1",
    )
