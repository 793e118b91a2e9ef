"""``kind: sequence_classification``: an encoder (BERT, MiniLM, RoBERTa, ...) with a
classification head, through transformers' ``AutoModelForSequenceClassification``.

The part knows everything task-specific: how to tokenise examples (once per run), how to
pad a batch, which metrics to report and how to turn logits into predictions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tunewright import hookimpl
from tunewright.plugins.models.classification import ClassificationObjective, label_head
from tunewright.plugins.models.text_task import HubTextTask


class SequenceClassification(ClassificationObjective, HubTextTask):
    """A text classifier: ``{"text", "label"}`` examples in, labels with probabilities out."""

    pipeline_tag = "text-classification"  # the Hugging Face task the model card names
    peft_task_type = "SEQ_CLS"  # PEFT trains and saves the head along with the adapter
    example_fields = ("text", "text_pair", "label")
    edge_answers = "label"  # token ids in, class logits out: tunewright export format=onnx

    def load_pretrained(self, label_names: list[str], source: str | Path | None = None, **options):
        """The pre-trained model (or a saved full fine-tune at ``source``) with a head for
        ``label_names``; ``options`` go to ``from_pretrained`` (a method's quantisation)."""
        from transformers import AutoModelForSequenceClassification

        return self.load_with(AutoModelForSequenceClassification, source, **label_head(label_names), **options)

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


@hookimpl
def tunewright_register_models(registry):
    registry.add(
        "sequence_classification",
        SequenceClassification,
        description="encoder + classification head (BERT, MiniLM, RoBERTa, ...): accuracy, macro-F1",
    )
