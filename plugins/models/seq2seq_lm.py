"""``kind: seq2seq_lm``: encoder-decoder fine-tuning (T5, BART) for summarisation, translation
and other text-to-text tasks.

The same examples and report as ``causal_lm`` (a prompt in ``text``, the target in
``response``, or a label's name for classification data), but the prompt feeds the
encoder and the decoder writes the target, starting from the model's
``decoder_start_token_id``; the loss covers every target token and its
end-of-sequence token. Test answers are generated and scored by exact match and
ROUGE-L.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunewright import hookimpl
from tunewright.errors import ConfigError, DataError
from tunewright.inference import pooled_hidden_states
from tunewright.plugins.models.text_generation import GenerationConfig, TextGenerationTask
from tunewright.plugins.models.text_task import IGNORE


@dataclass
class Seq2SeqLMConfig(GenerationConfig):
    prompt_template: str = "{prompt}"  # e.g. "summarize: {prompt}" for T5
    use_chat_template: bool = False
    packing: bool = False  # kept so that earlier runs' configs compose; an encoder-decoder refuses true


class Seq2SeqLM(TextGenerationTask):
    """An encoder reads the prompt, a decoder writes the response."""

    pipeline_tag = "text2text-generation"  # the Hugging Face task the model card names
    peft_task_type = "SEQ_2_SEQ_LM"

    def __init__(self, cfg: Seq2SeqLMConfig):
        if cfg.packing:
            raise ConfigError(
                "model.packing=true is for decoders (model=causal_lm); an encoder-decoder reads each prompt whole"
            )
        super().__init__(cfg)

    def load_pretrained(self, label_names: list[str], source: str | Path | None = None, **options):
        from transformers import AutoModelForSeq2SeqLM

        model = self.load_with(AutoModelForSeq2SeqLM, source, **options)
        if model.config.decoder_start_token_id is None:
            raise ConfigError(
                f"model.name_or_path={self.cfg.name_or_path}: the checkpoint names no decoder_start_token_id"
            )
        self.decoder_start = model.config.decoder_start_token_id
        return model

    @property
    def decoder_start_token_id(self) -> int:
        start = getattr(self, "decoder_start", None)
        if start is None:  # encoding before the model is loaded (the token cache, a reload)
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(
                self.source, revision=self.cfg.revision, trust_remote_code=self.cfg.trust_remote_code
            )
            start = self.decoder_start = config.decoder_start_token_id
        return start

    def encode(self, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Prompt tokens for the encoder; response tokens (with end of sequence) as labels."""
        features = []
        for example in examples:
            ids = self.tokenizer(self.prompt(example), add_special_tokens=False)["input_ids"][: self.cfg.max_length]
            feature = {"input_ids": ids + [self.tokenizer.eos_token_id], "attention_mask": [1] * (len(ids) + 1)}
            if example.get("response") is not None:
                target = self.tokenizer(str(example["response"]), add_special_tokens=False)["input_ids"]
                target = (target + [self.tokenizer.eos_token_id])[: self.cfg.max_length]
                if not target:
                    raise DataError(f"an empty response: {example['text'][:60]!r}")
                feature["labels"] = target
            features.append(feature)
        return features

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Right-padded prompts and targets; the decoder reads the target shifted right."""
        pad = self.tokenizer.pad_token_id
        width = max(len(f["input_ids"]) for f in features)
        batch = {
            "input_ids": torch.tensor([f["input_ids"] + [pad] * (width - len(f["input_ids"])) for f in features]),
            "attention_mask": torch.tensor(
                [f["attention_mask"] + [0] * (width - len(f["attention_mask"])) for f in features]
            ),
        }
        if all("labels" in f for f in features):
            length = max(len(f["labels"]) for f in features)
            labels = [f["labels"] + [IGNORE] * (length - len(f["labels"])) for f in features]
            batch["labels"] = torch.tensor(labels)
            decoder = [[self.decoder_start_token_id] + [pad if t == IGNORE else t for t in row[:-1]] for row in labels]
            batch["decoder_input_ids"] = torch.tensor(decoder)
        return batch

    @staticmethod
    def targets(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The decoder reads the target shifted right, so position t predicts token t."""
        return batch["labels"]

    def scored(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return logits, self.targets(batch)

    def embed_inputs(self, model, texts: list[str], batch_size: int, device, dtype=None):
        """Each prompt's mean encoder state (the decoder runs one start token only)."""

        def collate(features):
            return {
                **self.collate(features),
                "decoder_input_ids": torch.full((len(features), 1), self.decoder_start_token_id),
            }

        features = self.encode([{"text": text} for text in texts])
        return pooled_hidden_states(
            model,
            features,
            collate,
            batch_size,
            device,
            dtype,
            last_hidden=lambda output: output.encoder_last_hidden_state,
        )

    @staticmethod
    def answer_tokens(output: torch.Tensor, batch) -> torch.Tensor:
        """An encoder-decoder's output is the answer alone."""
        return output


@hookimpl
def tunewright_register_models(registry):
    registry.add(
        "seq2seq_lm",
        Seq2SeqLM,
        schema=Seq2SeqLMConfig,
        description="encoder-decoder text-to-text (T5, BART): summarisation, translation; exact match, ROUGE-L",
    )
