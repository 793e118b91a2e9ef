"""``kind: image_classification``: any image classifier transformers can load with
``AutoModelForImageClassification`` (ViT, DeiT, ConvNeXt, ResNet, Swin, and CLIP's
vision tower with a linear head), prepared by the checkpoint's own image processor.

Examples are ``{"image": path, "label": i}`` (``data=image_folder``, or
``data=csv data.image_column=...``). Images are decoded and processed per batch, so a
large dataset never sits in memory as pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tunewright import hookimpl
from tunewright.images import open_image
from tunewright.plugins.models.classification import ClassificationObjective, label_head
from tunewright.plugins.models.hub_task import HubTask


class ImageClassification(ClassificationObjective, HubTask):
    """An image classifier: ``{"image", "label"}`` examples in, labels with probabilities out."""

    pipeline_tag = "image-classification"  # the Hugging Face task the model card names
    input_field = "image"
    peft_task_type = None  # PEFT has no image task type; the head is saved through head_modules
    head_modules = ["classifier"]  # transformers' name for every image classification head

    @property
    def image_processor(self):
        from transformers import AutoImageProcessor

        return self.loaded_preprocessor(AutoImageProcessor)

    def preprocessors(self) -> list:
        return [self.image_processor]

    def pixels(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """``pixel_values`` for the features' images, decoded and processed now."""
        return dict(self.image_processor([open_image(f["image"]) for f in features], return_tensors="pt"))

    def load_pretrained(self, label_names: list[str], source: str | Path | None = None, **options):
        """The pre-trained model with a new head for ``label_names`` (a checkpoint's own
        head of another size, such as ImageNet's 1,000 classes, is replaced)."""
        from transformers import AutoModelForImageClassification

        return self.load_with(AutoModelForImageClassification, source, **label_head(label_names),
                              ignore_mismatched_sizes=True, **options)  # fmt: skip

    def encode(self, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The image path and label; pixels are produced per batch by :meth:`collate`."""
        return [{"image": e["image"], **({"labels": e["label"]} if e.get("label") is not None else {})} for e in examples]

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.pixels(features)
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        return batch

    @staticmethod
    def embed(output, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The last hidden state averaged over patches (ViT) or over the feature map (ResNet)."""
        hidden = output.hidden_states[-1].float()
        return hidden.mean(dim=(2, 3)) if hidden.dim() == 4 else hidden.mean(dim=1)


@hookimpl
def tunewright_register_models(registry):
    registry.add("image_classification", ImageClassification,
                 description="image classifier (ViT, ResNet, ConvNeXt, CLIP vision + linear head): accuracy, macro-F1")  # fmt: skip
