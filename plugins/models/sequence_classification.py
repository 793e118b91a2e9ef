"""``kind: sequence_classification``: an encoder (BERT, MiniLM, RoBERTa, ...) with a
classification head, through transformers' ``AutoModelForSequenceClassification``.

The part knows everything task-specific: how to tokenise examples (once per run), how to
pad a batch, which metrics to report and how to turn logits into predictions.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score

from tunewright import hookimpl
from tunewright.embedded import resolve_model_path
from tunewright.schema import ModelConfig

LABELS_FILE = "labels.json"


def _quiet_transformers() -> None:
    """transformers prints load reports and progress bars; the run prints its own summary."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


class SequenceClassification:
    """A text classifier: ``{"text", "label"}`` examples in, labels with probabilities out."""

    peft_task_type = "SEQ_CLS"  # PEFT trains and saves the head along with the adapter

    def __init__(self, cfg: ModelConfig):
        self.cfg = cfg
        self.source = resolve_model_path(cfg.name_or_path)
        self.tokenizer_source = self.source  # a run's model/ folder when reloading
        self._tokenizer = None

    # ------------------------------------------------------------------ loading

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            _quiet_transformers()
            from_base = self.tokenizer_source == self.source
            self._tokenizer = AutoTokenizer.from_pretrained(
                self.tokenizer_source,
                revision=self.cfg.revision if from_base else None,
                trust_remote_code=self.cfg.trust_remote_code,
            )
        return self._tokenizer

    def load_pretrained(self, label_names: list[str], source: str | Path | None = None, **options):
        """The pre-trained model (or a saved full fine-tune at ``source``) with a head for
        ``label_names``; ``options`` go to ``from_pretrained`` (a method's quantisation)."""
        from transformers import AutoModelForSequenceClassification

        _quiet_transformers()
        return AutoModelForSequenceClassification.from_pretrained(
            str(source or self.source),
            revision=None if source else self.cfg.revision,
            trust_remote_code=self.cfg.trust_remote_code,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
            **options,
        )

    def cache_identity(self) -> dict[str, Any]:
        """What tokenisation depends on, for the token cache's key."""
        if self.tokenizer.is_fast:  # its JSON, less the truncation and padding state encoding sets
            state = json.loads(self.tokenizer.backend_tokenizer.to_str())
            state.pop("truncation", None)
            state.pop("padding", None)
        else:
            state = sorted(self.tokenizer.get_vocab().items())
        described = json.dumps([type(self.tokenizer).__name__, state], sort_keys=True)
        return {"task": "sequence_classification", "max_length": self.cfg.max_length,
                "tokenizer": hashlib.sha256(described.encode()).hexdigest()}  # fmt: skip

    def pretrained_label_names(self) -> list[str] | None:
        """The labels the checkpoint's own head predicts, or ``None`` when it has none
        (transformers' placeholder names ``LABEL_0``, ``LABEL_1``, ...)."""
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(self.source, revision=self.cfg.revision, trust_remote_code=self.cfg.trust_remote_code)
        names = [str(config.id2label[i]) for i in sorted(config.id2label)] if config.id2label else []
        return None if all(re.fullmatch(r"LABEL_\d+", name) for name in names) else names

    def save_artifacts(self, directory: Path, label_names: list[str]) -> None:
        """Save what inference needs besides the weights: tokenizer and label names."""
        self.tokenizer.save_pretrained(directory)
        (directory / LABELS_FILE).write_text(json.dumps({"label_names": label_names}) + "\n")

    @staticmethod
    def read_label_names(directory: Path) -> list[str]:
        return json.loads((directory / LABELS_FILE).read_text())["label_names"]

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
