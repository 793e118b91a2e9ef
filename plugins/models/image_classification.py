"""``kind: image_classification``: any image classifier transformers can load with
``AutoModelForImageClassification`` (ViT, DeiT, ConvNeXt, ResNet, Swin, and CLIP's
vision tower with a linear head), prepared by the checkpoint's own image processor.

Examples are ``{"image": path, "label": i}`` (``data=image_folder``, or
``data=csv data.image_column=...``). Images are decoded and processed per batch, so a
large dataset never sits in memory as pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunewright import hookimpl
from tunewright.images import open_image
from tunewright.plugins.models.classification import ClassificationObjective, label_head
from tunewright.plugins.models.hub_task import HubTask
from tunewright.schema import ModelConfig


@dataclass
class ImageClassificationConfig(ModelConfig):
    # Training images randomly cropped (70-100% of the area, aspect 3:4 to 4:3) and mirrored
    # left-right before the processor; off by default: mirroring is wrong for text in images
    # or for laterality (left/right in medical images).
    augment: bool = False


def augmented(image):
    """A random crop of ``image`` covering 70-100% of its area, mirrored half the time;
    drawn from torch's generator, which checkpoints save, so a resumed run draws the same."""
    from PIL import Image

    width, height = image.size
    area = width * height * (0.7 + 0.3 * torch.rand(()).item())
    aspect = math.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * torch.rand(()).item())
    crop_width = min(width, max(1, round(math.sqrt(area * aspect))))
    crop_height = min(height, max(1, round(math.sqrt(area / aspect))))
    left = int(torch.randint(0, width - crop_width + 1, ()).item())
    top = int(torch.randint(0, height - crop_height + 1, ()).item())
    image = image.crop((left, top, left + crop_width, top + crop_height))
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if torch.rand(()).item() < 0.5 else image


class ImageClassification(ClassificationObjective, HubTask):
    """An image classifier: ``{"image", "label"}`` examples in, labels with probabilities out."""

    pipeline_tag = "image-classification"  # the Hugging Face task the model card names
    input_field = "image"
    peft_task_type = None  # PEFT has no image task type; the head is saved through head_modules
    head_modules = ("classifier",)  # transformers' name for every image classification head
    example_fields = ("image", "label")
    edge_answers = "label"  # pixel values in, class logits out: tunewright export format=onnx

    @property
    def image_processor(self):
        from transformers import AutoImageProcessor

        return self.loaded_preprocessor(AutoImageProcessor)

    def preprocessors(self) -> list:
        return [self.image_processor]

    def pixels(self, features: list[dict[str, Any]], augment: bool = False) -> dict[str, torch.Tensor]:
        """``pixel_values`` for the features' images, decoded (and augmented) now."""
        images = [open_image(f["image"]) for f in features]
        return dict(self.image_processor([augmented(i) for i in images] if augment else images, return_tensors="pt"))

    def load_pretrained(self, label_names: list[str], source: str | Path | None = None, **options):
        """The pre-trained model with a new head for ``label_names`` (a checkpoint's own
        head of another size, such as ImageNet's 1,000 classes, is replaced)."""
        from transformers import AutoModelForImageClassification

        return self.load_with(
            AutoModelForImageClassification, source, **label_head(label_names), ignore_mismatched_sizes=True, **options
        )

    def encode(self, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The image path and label; pixels are produced per batch by :meth:`collate`."""
        return [
            {"image": e["image"], **({"labels": e["label"]} if e.get("label") is not None else {})} for e in examples
        ]

    def collate(self, features: list[dict[str, Any]], augment: bool = False) -> dict[str, torch.Tensor]:
        batch = self.pixels(features, augment)
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        return batch

    def collate_train(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """A training batch: augmented when ``model.augment`` is on."""
        return self.collate(features, augment=self.cfg.augment)

    @staticmethod
    def embed(output, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The last hidden state averaged over patches (ViT) or over the feature map (ResNet)."""
        hidden = output.hidden_states[-1].float()
        return hidden.mean(dim=(2, 3)) if hidden.dim() == 4 else hidden.mean(dim=1)


@hookimpl
def tunewright_register_models(registry):
    registry.add(
        "image_classification",
        ImageClassification,
        schema=ImageClassificationConfig,
        description="image classifier (ViT, ResNet, ConvNeXt, CLIP vision + linear head): accuracy, macro-F1",
    )
