"""A tiny random LLaVA and synthetic image questions for the vision-language tests.

The checkpoint is built from configs (a two-layer CLIP vision tower on 16-pixel images,
a two-layer Llama whose vocabulary holds the image token) with a local tokenizer that
has a chat template, and saved with its processor like any local checkpoint. Each image
is a square of one dominant colour; its answer names the colour, so a few steps of
training can learn to read it from the picture.
"""

from __future__ import annotations

from pathlib import Path

from vision_models import write_images

COLOURS = ("red", "green", "blue")  # the dominant channel of image i is i % 3 (vision_models)
IMAGE_TOKEN = "<image>"
# Content parts in order: an image part becomes the image token, a text part its text.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: "
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image> {% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def save_tiny_llava(directory: Path) -> Path:
    """A random LLaVA (CLIP vision tower, 16x16 images in 4-pixel patches: 16 image
    tokens; two-layer Llama, width 32) with its processor in ``directory``."""
    import torch
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from tunewright.embedded import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("embedded:all-MiniLM-L6-v2"), eos_token="[SEP]")
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    tokenizer.chat_template = CHAT_TEMPLATE
    image_token = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}),
        tokenizer=tokenizer,
        patch_size=4,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, which the "default" strategy drops
        chat_template=CHAT_TEMPLATE,
    )
    torch.manual_seed(0)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=16,
            patch_size=4,
        ).to_dict(),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=128,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ).to_dict(),
        image_token_index=image_token,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    LlavaForConditionalGeneration(config).save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def write_image_questions(directory: Path, count: int) -> list[dict]:
    """``count`` images in ``directory / "img"`` with a question and the colour as answer,
    as rows of a data file beside it (image paths relative to it)."""
    rows = []
    for path, colour in write_images(directory / "img", count, list(COLOURS)):
        rows.append({"file": f"img/{path.name}", "question": "which colour is it?", "answer": colour})
    return rows
