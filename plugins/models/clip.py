"""``kind: clip``: CLIP fine-tuned as a classifier by contrast with its label prompts.

Each label becomes a text prompt (``model.prompt_template``, "a photo of a {label}.");
an image's logits are CLIP's scaled cosine similarities between its embedding and each
prompt's, and the loss is cross-entropy over them: CLIP's own contrastive objective
with the labels as the texts. Both towers (and the temperature) can train, nothing new
is added, and before training the model is already CLIP's zero-shot classifier.

For CLIP's vision tower with a new linear head instead, use
``model=image_classification`` with the same checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

from tunewright import hookimpl
from tunewright.errors import ConfigError
from tunewright.plugins.models.image_classification import ImageClassification, ImageClassificationConfig
from tunewright.schema import knob


@dataclass
class ClipConfig(ImageClassificationConfig):
    prompt_template: str = "a photo of a {label}."  # one prompt per label; underscores become spaces
    max_length: int = knob(77, low=1, high=77)  # prompt tokens (CLIP's text tower has 77 positions)


@cache
def label_scoring_clip():
    """``CLIPModel`` whose output ``logits`` are each image's scores against the label
    prompts (what the trainer and every method expect of a classifier)."""
    from transformers import CLIPModel
    from transformers.utils import ModelOutput

    @dataclass
    class LabelScores(ModelOutput):
        logits: torch.FloatTensor | None = None
        image_embeds: torch.FloatTensor | None = None

    class CLIPLabelScores(CLIPModel):
        def forward(self, pixel_values=None, input_ids=None, attention_mask=None, output_hidden_states=None, **kwargs):
            output = super().forward(
                pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask, **kwargs
            )
            return LabelScores(logits=output.logits_per_image, image_embeds=output.image_embeds)

    return CLIPLabelScores


class Clip(ImageClassification):
    """Images scored against one text prompt per label."""

    pipeline_tag = "zero-shot-image-classification"  # the Hugging Face task the model card names
    head_is_new = False  # the label prompts are the head, and CLIP already scores them
    head_modules = ()  # the label prompts are scored by the pre-trained towers: no separate head
    edge_answers = "label"  # pixel values in, label scores out; the label prompts are constants of the graph

    def __init__(self, cfg: ClipConfig):
        if "{label}" not in cfg.prompt_template:
            raise ConfigError(
                f"model.prompt_template={cfg.prompt_template!r} must contain {{label}}, where each label's name goes"
            )
        super().__init__(cfg)
        self.prompts: dict[str, torch.Tensor] | None = None

    @property
    def tokenizer(self):
        from transformers import AutoTokenizer

        return self.loaded_preprocessor(AutoTokenizer)

    def preprocessors(self) -> list:
        return [self.tokenizer, self.image_processor]

    def pretrained_label_names(self) -> list[str] | None:
        return None  # any label set is CLIP's zero-shot head, but no checkpoint names its own

    def prepare(self, examples: list[dict[str, Any]], label_names: list[str]) -> list[dict[str, Any]]:
        self.set_labels(label_names)
        return examples

    def load_pretrained(self, label_names: list[str], source: str | Path | None = None, **options):
        self.set_labels(label_names)
        return self.load_with(label_scoring_clip(), source, **options)

    def set_labels(self, label_names: list[str]) -> None:
        """Tokenise one prompt per label; every batch carries them all."""
        texts = [self.cfg.prompt_template.format(label=name.replace("_", " ")) for name in label_names]
        prompts = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.cfg.max_length, return_tensors="pt"
        )
        self.prompts = {"input_ids": prompts["input_ids"], "attention_mask": prompts["attention_mask"]}

    def collate(self, features: list[dict[str, Any]], augment: bool = False) -> dict[str, torch.Tensor]:
        if self.prompts is None:
            raise ConfigError(
                "model=clip: no label prompts yet; they are built when examples are prepared or the model loads"
            )
        return {**super().collate(features, augment), **self.prompts}

    @staticmethod
    def embed(output, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """CLIP's projected image embedding."""
        return output.image_embeds


@hookimpl
def tunewright_register_models(registry):
    registry.add(
        "clip",
        Clip,
        schema=ClipConfig,
        description="CLIP scoring images against a text prompt per label (contrastive fine-tuning)",
    )
