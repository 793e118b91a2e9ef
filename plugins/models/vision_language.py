"""``kind: vision_language``: supervised fine-tuning of a vision-language assistant
(LLaVA, and checkpoints ``AutoModelForImageTextToText`` loads the same way) on images
with questions and answers.

Examples are ``{"image": path, "text": question, "response": answer}`` or an image
with a conversation (``messages``): ``data=csv data.image_column=file
data.text_column=question data.response_column=answer data.label_column=null``, or
``data=jsonl data.image_column=file data.messages_column=messages``. The first user
turn carries the image (the processor's chat template places its token); the token is
expanded to as many image tokens as the vision tower gives features, a number checked
once against the model's config. The loss covers only the answer: the prompt and its
image tokens are masked, as for the causal LM (:mod:`.causal_lm`), whose evaluation
(loss, perplexity, token accuracy; exact match, ROUGE-L and chrF on generated test
answers) this task shares.

The anchors' defaults: the vision tower stays frozen under every method (it learnt
from far more images than a domain set holds, and adapting it costs the most memory);
the projector trains only with ``model.train_projector``; LoRA adapts the language
model's linear layers only (:attr:`VisionLanguage.adapted_module`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunewright import hookimpl
from tunewright.errors import ConfigError, DataError
from tunewright.images import open_image
from tunewright.inference import to_device
from tunewright.plugins.models.causal_lm import CausalLM, CausalLMConfig
from tunewright.precision import autocast

VISION_TOWER = "vision_tower"
PROJECTOR = "multi_modal_projector"


@dataclass
class VisionLanguageConfig(CausalLMConfig):
    # Train the projector (vision features -> language embeddings) under full and freeze,
    # as LLaVA's own fine-tuning stage does; false keeps it as pre-trained. Under lora add
    # method.modules_to_save=[multi_modal_projector] for the same. The vision tower is
    # always frozen.
    train_projector: bool = False


class VisionLanguage(CausalLM):
    """An assistant that answers questions about an image: ``{"image", "text" or
    "messages", "response"}`` examples in, answers out."""

    pipeline_tag = "image-text-to-text"  # the Hugging Face task the model card names
    input_field = "image"  # what monitors describe and embed
    question_field = "text"  # the question asked about the image
    example_fields = ("image", "text", "messages", "response")
    adapted_module = "model.language_model"  # LoRA's default: the language model, never the vision tower

    def __init__(self, cfg: VisionLanguageConfig):
        if cfg.packing:
            raise ConfigError("model.packing=true: a vision-language batch holds one image per row; set it false")
        super().__init__(cfg)

    @property
    def processor(self):
        from transformers import AutoProcessor

        return self.loaded_preprocessor(AutoProcessor)

    @property
    def tokenizer(self):
        tokenizer = self.processor.tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    def preprocessors(self) -> list:
        return [self.processor]

    def load_pretrained(self, label_names: list[str], source: str | Path | None = None, **options):
        from transformers import AutoModelForImageTextToText

        model = self.load_with(AutoModelForImageTextToText, source, **options)
        model.config.text_config.pad_token_id = self.tokenizer.pad_token_id
        return model

    def keep_frozen(self, model) -> None:
        """The vision tower (and, without ``model.train_projector``, the projector) stays
        as pre-trained whatever the method."""
        frozen = (VISION_TOWER,) if self.cfg.train_projector else (VISION_TOWER, PROJECTOR)
        for name, parameter in model.named_parameters():
            if any(f".{part}." in f".{name}" for part in frozen):
                parameter.requires_grad_(False)

    # ------------------------------------------------------------------ data

    @cached_property
    def image_tokens(self) -> int:
        """How many image tokens the processor writes per image, checked against the
        features the vision tower gives (its patches, less a dropped class token)."""
        from PIL import Image
        from transformers import AutoConfig

        processor = self.processor
        written = processor(images=[Image.new("RGB", (8, 8))], text=[processor.image_token], return_tensors="pt")
        count = int((written["input_ids"] == processor.image_token_id).sum())
        config = AutoConfig.from_pretrained(self.source, **self.from_base())
        vision = config.vision_config
        features = (vision.image_size // vision.patch_size) ** 2
        if getattr(config, "vision_feature_select_strategy", "default") == "full":
            features += 1  # the class token is kept
        if count != features:
            raise ConfigError(
                f"model.name_or_path={self.cfg.name_or_path}: its processor writes {count} image tokens per image "
                f"but the vision tower gives {features} features ({vision.image_size}px images in "
                f"{vision.patch_size}px patches); the processor's patch_size and vision_feature_select_strategy "
                "must match the model's config"
            )
        return count

    def prompt(self, example: dict[str, Any] | str) -> str:
        """The conversation up to the answer, the image in the first user turn, through
        the processor's chat template (else ``model.prompt_template`` with the image
        token before the question)."""
        if isinstance(example, str):
            example = {"text": example}
        processor = self.processor
        if self.cfg.use_chat_template and getattr(processor, "chat_template", None):
            turns = example.get("messages", [None])[:-1] or [{"role": "user", "content": example["text"]}]
            first = next((i for i, turn in enumerate(turns) if turn["role"] == "user"), 0)
            conversation = [
                {**turn, "content": [{"type": "image"}, {"type": "text", "text": turn["content"]}]}
                if i == first
                else turn
                for i, turn in enumerate(turns)
            ]
            return processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        return self.cfg.prompt_template.format(prompt=f"{processor.image_token}\n{example['text']}")

    def prompt_ids(self, example: dict[str, Any]) -> list[int]:
        """The prompt's tokens with its one image token expanded to :attr:`image_tokens`."""
        if not example.get("image"):
            raise DataError(
                f"an example has no image: {str(example.get('text'))[:60]!r}; map one with data.image_column"
            )
        image = self.processor.image_token_id
        ids = super().prompt_ids(example)
        if ids.count(image) != 1:
            raise DataError(
                f"{example['image']}: the prompt holds {ids.count(image)} image tokens, not 1; "
                "the question must not contain the image token itself"
            )
        at = ids.index(image)
        return ids[:at] + [image] * self.image_tokens + ids[at + 1 :]

    def encode(self, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """As the causal LM encodes, with each example's image path kept for its batch."""
        return [{**feature, "image": e["image"]} for feature, e in zip(super().encode(examples), examples)]

    def cache_identity(self) -> None:
        """Not cached: a feature holds its image's path, which the token cache (integer
        arrays only) does not store; tokenising a question is cheap beside its image."""
        return None

    def media_inputs(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """The features' images, decoded now, as the processor's pixel values."""
        images = [open_image(f["image"]) for f in features]
        return {"pixel_values": self.processor.image_processor(images, return_tensors="pt")["pixel_values"]}

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {**super().collate(features), **self.media_inputs(features)}

    # ------------------------------------------------------------------ prediction

    def predict_inputs(self, model, inputs: list[Any], device) -> list[dict[str, str]]:
        """``{"response": answer}`` per ``{"image": path, "text": question}``."""
        for number, value in enumerate(inputs, start=1):
            if not isinstance(value, dict) or not value.get("image") or not value.get("text"):
                raise DataError(f"input {number}: a vision-language model answers an image and a question")
        return [{"response": answer} for answer in self.generate(model, inputs, device)]

    def chat_example(self, turns: list[dict[str, Any]]) -> dict[str, Any]:
        """A conversation whose first user turn holds the image (``"image": path``) as
        the ``{"image", "messages"}`` example of a conversation row."""
        images = [turn["image"] for turn in turns if turn.get("image")]
        if len(images) != 1:
            raise DataError(f"a conversation holds {len(images)} images; a vision-language model answers about one")
        plain = [{key: value for key, value in turn.items() if key != "image"} for turn in turns]
        return {**super().chat_example(plain), "image": images[0]}

    @torch.no_grad()
    def embed_inputs(self, model, inputs: list[str], batch_size: int, device, dtype=None) -> np.ndarray:
        """Each image's projected features averaged over its image tokens (what a drift
        monitor compares: the pictures the assistant is asked about)."""
        model.eval()
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        rows = []
        for start in range(0, len(inputs), batch_size):
            pixels = to_device(
                self.media_inputs([{"image": path} for path in inputs[start : start + batch_size]]), device
            )
            with autocast(device, dtype):
                projected = base.get_image_features(**pixels).pooler_output  # per image: (tokens, width)
            rows.append(torch.stack([image.float().mean(dim=0) for image in projected]).cpu())
        return torch.cat(rows).numpy()


@hookimpl
def tunewright_register_models(registry):
    registry.add(
        "vision_language",
        VisionLanguage,
        schema=VisionLanguageConfig,
        description="vision-language assistant SFT (LLaVA): answers about images, loss on answers, exact match",
    )
