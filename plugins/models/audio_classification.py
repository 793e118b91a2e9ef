"""``kind: audio_classification``: any audio classifier transformers can load with
``AutoModelForAudioClassification`` (wav2vec2, HuBERT, WavLM, Data2Vec audio, the
Whisper encoder), prepared by the checkpoint's own feature extractor.

Examples are ``{"audio": path, "label": i}`` (``data=audio_folder``, or
``data=csv data.audio_column=...``). Files are decoded, mixed down to mono and resampled
to the extractor's rate per batch (:mod:`tunewright.audio`), so a large dataset never
sits in memory as samples; each clip is cut at ``model.max_seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunewright import hookimpl
from tunewright.audio import load_audio
from tunewright.plugins.models.classification import ClassificationObjective, label_head
from tunewright.plugins.models.hub_task import HubTask
from tunewright.schema import ModelConfig, knob


@dataclass
class AudioClassificationConfig(ModelConfig):
    # Seconds of each clip the model hears (the start of a longer one): memory and time per
    # step grow with it; the data card reports the clips' durations to choose it by.
    max_seconds: float = knob(30.0, low=0.1)
    # Keep the convolutional feature encoder (raw samples -> frames) as pre-trained, as
    # wav2vec2's own fine-tuning recipe does, whatever the method: it learnt generic sound
    # features from far more audio than a domain set holds. false trains it too (method=full).
    freeze_feature_encoder: bool = True


class AudioClassification(ClassificationObjective, HubTask):
    """An audio classifier: ``{"audio", "label"}`` examples in, labels with probabilities out."""

    pipeline_tag = "audio-classification"  # the Hugging Face task the model card names
    input_field = "audio"
    peft_task_type = None  # PEFT has no audio task type; the head is saved through head_modules
    head_modules = ("projector", "classifier")  # transformers' names for the pooled head's layers
    example_fields = ("audio", "label")

    @property
    def feature_extractor(self):
        from transformers import AutoFeatureExtractor

        return self.loaded_preprocessor(AutoFeatureExtractor)

    def preprocessors(self) -> list:
        return [self.feature_extractor]

    def load_pretrained(self, label_names: list[str], source: str | Path | None = None, **options):
        """The pre-trained model with a new head for ``label_names`` (a checkpoint's own
        head of another size is replaced)."""
        from transformers import AutoModelForAudioClassification

        return self.load_with(
            AutoModelForAudioClassification, source, **label_head(label_names), ignore_mismatched_sizes=True, **options
        )

    def keep_frozen(self, model) -> None:
        """The feature encoder stays frozen under any method (``model.freeze_feature_encoder``)."""
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        if self.cfg.freeze_feature_encoder and hasattr(base, "freeze_feature_encoder"):
            base.freeze_feature_encoder()

    def encode(self, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The file path and label; samples are decoded per batch by :meth:`collate`."""
        return [
            {"audio": e["audio"], **({"labels": e["label"]} if e.get("label") is not None else {})} for e in examples
        ]

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        extractor = self.feature_extractor
        rate = extractor.sampling_rate
        clips = [load_audio(f["audio"], rate, self.cfg.max_seconds) for f in features]
        # Whisper's extractor pads every clip to its fixed 30 s window; the others pad to the longest.
        padding = "max_length" if getattr(extractor, "n_samples", None) else "longest"
        batch = dict(extractor(clips, sampling_rate=rate, padding=padding, return_tensors="pt"))
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        return batch

    @staticmethod
    def embed(output, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The last hidden state averaged over the frames of each clip's own samples
        (padding left out, in proportion, where the extractor returned a mask)."""
        hidden = output.hidden_states[-1].float()
        if "attention_mask" not in batch:
            return hidden.mean(dim=1)
        samples = batch["attention_mask"].sum(dim=1, keepdim=True).float()
        frames = torch.ceil(samples * hidden.shape[1] / batch["attention_mask"].shape[1])
        mask = (torch.arange(hidden.shape[1], device=hidden.device)[None, :] < frames).float().unsqueeze(-1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


@hookimpl
def tunewright_register_models(registry):
    registry.add(
        "audio_classification",
        AudioClassification,
        schema=AudioClassificationConfig,
        description="audio classifier (wav2vec2, HuBERT, WavLM, Whisper encoder): accuracy, macro-F1",
    )
