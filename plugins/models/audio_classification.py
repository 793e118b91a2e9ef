"""``kind: audio_classification``: any audio classifier transformers can load with
``AutoModelForAudioClassification`` (wav2vec2, HuBERT, WavLM, Data2Vec audio, the
Whisper encoder), prepared by the checkpoint's own feature extractor.

Examples are ``{"audio": path, "label": i}`` (``data=audio_folder``, or
``data=csv data.audio_column=...``), decoded per batch (:mod:`.audio_task`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tunewright import hookimpl
from tunewright.plugins.models.audio_task import AudioModelConfig, AudioTask
from tunewright.plugins.models.classification import ClassificationObjective, label_head


class AudioClassification(ClassificationObjective, AudioTask):
    """An audio classifier: ``{"audio", "label"}`` examples in, labels with probabilities out."""

    pipeline_tag = "audio-classification"  # the Hugging Face task the model card names
    head_modules = ("projector", "classifier")  # transformers' names for the pooled head's layers
    example_fields = ("audio", "label")

    def preprocessors(self) -> list:
        return [self.feature_extractor]

    def load_pretrained(self, label_names: list[str], source: str | Path | None = None, **options):
        """The pre-trained model with a new head for ``label_names`` (a checkpoint's own
        head of another size is replaced)."""
        from transformers import AutoModelForAudioClassification

        return self.load_with(
            AutoModelForAudioClassification, source, **label_head(label_names), ignore_mismatched_sizes=True, **options
        )

    def encode(self, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The file path and label; samples are decoded per batch by :meth:`collate`."""
        return [
            {"audio": e["audio"], **({"labels": e["label"]} if e.get("label") is not None else {})} for e in examples
        ]

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.extracted(features)
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        return batch


@hookimpl
def tunewright_register_models(registry):
    registry.add(
        "audio_classification",
        AudioClassification,
        schema=AudioModelConfig,
        description="audio classifier (wav2vec2, HuBERT, WavLM, Whisper encoder): accuracy, macro-F1",
    )
