"""Tiny random vision checkpoints and synthetic labelled images for the tests.

The images are 20x20 squares whose dominant colour channel is the label plus noise, so
a few steps of training can learn them; the checkpoints are saved with their image
processor (and CLIP with a tokenizer) like any local checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_SIZE = 16


def image_pixels(label: int, rng: np.random.Generator) -> np.ndarray:
    """A 20x20 RGB image whose channel ``label % 3`` dominates."""
    pixels = rng.integers(0, 60, size=(20, 20, 3)).astype(np.uint8)
    pixels[..., label % 3] += 150
    return pixels


def write_images(directory: Path, count: int, labels: list[str], seed: int = 0) -> list[tuple[Path, str]]:
    """``count`` PNG files in ``directory``; returns ``(path, label)`` pairs, labels in turn."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(count):
        path = directory / f"{i:03d}.png"
        Image.fromarray(image_pixels(i % len(labels), rng)).save(path)
        written.append((path, labels[i % len(labels)]))
    return written


def save_tiny_vision_model(family: str, directory: Path) -> Path:
    """A two-block random ``vit``, ``resnet`` or ``clip`` checkpoint in ``directory``."""
    import torch
    from transformers import AutoTokenizer, CLIPConfig, CLIPModel, ResNetConfig, ResNetModel, ViTConfig, ViTModel
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    from tunewright.embedded import resolve_model_path

    torch.manual_seed(0)
    processor = ViTImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    if family == "vit":
        model = ViTModel(
            ViTConfig(
                image_size=IMAGE_SIZE,
                patch_size=4,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                initializer_range=0.2,
            )
        )
    elif family == "resnet":
        model = ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"))
        # BatchNorm statistics as a pre-trained network has them: measured on images like the data's.
        rng = np.random.default_rng(1)
        pixels = processor([image_pixels(i, rng) for i in range(24)], return_tensors="pt")["pixel_values"]
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None  # a plain average over the batches seen
        with torch.no_grad():
            model.train()(pixel_values=pixels)
    else:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("embedded:all-MiniLM-L6-v2"))
        tokenizer.save_pretrained(directory)
        model = CLIPModel(
            CLIPConfig(
                text_config={
                    "vocab_size": tokenizer.vocab_size,
                    "hidden_size": 32,
                    "intermediate_size": 64,
                    "num_hidden_layers": 2,
                    "num_attention_heads": 2,
                    "max_position_embeddings": 64,
                    "bos_token_id": tokenizer.cls_token_id,
                    "eos_token_id": tokenizer.sep_token_id,
                    "pad_token_id": tokenizer.pad_token_id,
                },
                vision_config={
                    "image_size": IMAGE_SIZE,
                    "patch_size": 4,
                    "hidden_size": 32,
                    "intermediate_size": 64,
                    "num_hidden_layers": 2,
                    "num_attention_heads": 2,
                },
                projection_dim=16,
                initializer_range=0.2,
            )
        )
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
