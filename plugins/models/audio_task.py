"""What the audio tasks share (:mod:`.audio_classification`, :mod:`.speech_recognition`):
the checkpoint's feature extractor, clips decoded and resampled per batch, the frozen
feature encoder, and embeddings averaged over each clip's own frames.

Examples carry ``{"audio": path}``; files are decoded, mixed down to mono and resampled
to the extractor's rate when a batch is built (:mod:`tunewright.audio`), so a large
dataset never sits in memory as samples; each clip is cut at ``model.max_seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tunewright.audio import load_audio
from tunewright.inference import to_device
from tunewright.plugins.models.hub_task import HubTask
from tunewright.precision import autocast
from tunewright.schema import ModelConfig, knob


@dataclass
class AudioModelConfig(ModelConfig):
    # Seconds of each clip the model hears (the start of a longer one): memory and time per
    # step grow with it; the data card reports the clips' durations to choose it by.
    max_seconds: float = knob(30.0, low=0.1)
    # Keep the convolutional feature encoder (raw samples -> frames) as pre-trained, as
    # wav2vec2's own fine-tuning recipe does, whatever the method: it learnt generic sound
    # features from far more audio than a domain set holds. false trains it too (method=full).
    freeze_feature_encoder: bool = True


class AudioTask(HubTask):
    """A task whose input is a recording, prepared by the checkpoint's feature extractor."""

    input_field = "audio"
    peft_task_type = None  # PEFT has no audio task type; the head is saved through head_modules
    # Whether embeddings ask the extractor for a frame mask it leaves out by default; None
    # keeps its own choice (wav2vec2-base is meant to run unmasked on zero-padded clips).
    embedding_frame_mask: bool | None = None

    @property
    def feature_extractor(self):
        from transformers import AutoFeatureExtractor

        return self.loaded_preprocessor(AutoFeatureExtractor)

    def keep_frozen(self, model) -> None:
        """The feature encoder stays frozen under any method (``model.freeze_feature_encoder``)."""
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        if self.cfg.freeze_feature_encoder and hasattr(base, "freeze_feature_encoder"):
            base.freeze_feature_encoder()

    def extracted(self, features: list[dict[str, Any]], frame_mask: bool | None = None) -> dict[str, torch.Tensor]:
        """The clips of ``features`` decoded at the extractor's rate and turned into model
        inputs; ``frame_mask=True`` asks for the mask of each clip's own frames even where
        the extractor leaves it out by default (Whisper's)."""
        extractor = self.feature_extractor
        rate = extractor.sampling_rate
        clips = [load_audio(f["audio"], rate, self.cfg.max_seconds) for f in features]
        # Whisper's extractor pads every clip to its fixed 30 s window; the others pad to the longest.
        padding = "max_length" if getattr(extractor, "n_samples", None) else "longest"
        return dict(
            extractor(clips, sampling_rate=rate, padding=padding, return_attention_mask=frame_mask, return_tensors="pt")
        )

    def hidden_output(self, model, batch: dict[str, torch.Tensor]):
        """The model's output for a batch of clips, with the hidden states :meth:`embed` reads."""
        return model(**batch, output_hidden_states=True)

    @staticmethod
    def frame_states(output) -> torch.Tensor:
        """The last hidden state over the clips' frames in ``output``."""
        return output.hidden_states[-1]

    def embed(self, output, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The frames' last hidden state averaged over each clip's own samples (padding
        left out, in proportion, where the extractor returned a mask)."""
        hidden = self.frame_states(output).float()
        if "attention_mask" not in batch:
            return hidden.mean(dim=1)
        samples = batch["attention_mask"].sum(dim=1, keepdim=True).float()
        frames = torch.ceil(samples * hidden.shape[1] / batch["attention_mask"].shape[1])
        mask = (torch.arange(hidden.shape[1], device=hidden.device)[None, :] < frames).float().unsqueeze(-1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)

    @torch.no_grad()
    def embed_inputs(self, model, inputs: list[str], batch_size: int, device, dtype=None) -> np.ndarray:
        """Each recording's frame-averaged last hidden state (what a drift monitor compares)."""
        model.eval()
        rows = []
        for start in range(0, len(inputs), batch_size):
            clips = [{"audio": path} for path in inputs[start : start + batch_size]]
            batch = to_device(self.extracted(clips, frame_mask=self.embedding_frame_mask), device)
            with autocast(device, dtype):
                output = self.hidden_output(model, batch)
            rows.append(self.embed(output, batch).cpu())
        return torch.cat(rows).numpy()
