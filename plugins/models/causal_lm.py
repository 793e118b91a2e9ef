"""``kind: causal_lm``: supervised fine-tuning of a decoder (GPT-2, LLaMA, Qwen, Mistral, ...).

Examples are a prompt (``text``) and a ``response``; a labelled classification dataset
works too, its label name being the response (the model learns to answer with it).
The prompt goes through the tokenizer's chat template when it has one
(``model.use_chat_template``), else through ``model.prompt_template``; the loss
covers only the response tokens and the end-of-sequence token appended to them.
With ``model.packing=true`` a batch's examples are laid end to end in rows of up to
``model.max_length`` tokens, with position ids restarting at each example: transformers
then builds a block-diagonal causal mask, so no example attends to another (checked
on the loaded model, which is refused if it does not isolate them).
Evaluation (shared with ``seq2seq_lm`` in :mod:`.text_generation`) reports loss,
perplexity and next-token accuracy on the responses; the test split is also answered
by greedy generation and scored by exact match, ROUGE-L and chrF (no extra dependency:
:mod:`.text_metrics`).
Generated answers are text, not class probabilities, so the bias audits (which need
them) do not apply to this task yet; the drift monitor records the prompts'
descriptors and mean hidden states (:meth:`CausalLM.embed_inputs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunewright import hookimpl
from tunewright.errors import ConfigError, DataError
from tunewright.inference import pooled_hidden_states
from tunewright.plugins.models.text_generation import GenerationConfig, TextGenerationTask
from tunewright.plugins.models.text_task import IGNORE  # the prompt, the padding


@dataclass
class CausalLMConfig(GenerationConfig):
    packing: bool = False  # lay a batch's examples end to end in rows of max_length: less padding


class CausalLM(TextGenerationTask):
    """A decoder trained to answer prompts: ``{"text", "response"}`` examples in, text out."""

    pipeline_tag = "text-generation"  # the Hugging Face task the model card names
    peft_task_type = "CAUSAL_LM"

    def load_pretrained(self, label_names: list[str], source: str | Path | None = None, **options):
        from transformers import AutoModelForCausalLM

        model = self.load_with(AutoModelForCausalLM, source, **options)
        model.config.pad_token_id = self.tokenizer.pad_token_id
        if self.cfg.packing:
            # A forward pass that builds a cache takes the plain causal mask; training needs
            # none (generation asks for one itself).
            model.config.use_cache = False
            self._check_packing_isolation(model)
        return model

    def _check_packing_isolation(self, model) -> None:
        """Packed rows rely on the model turning restarted position ids into separate
        attention blocks; a model that does not would let examples see each other."""
        first, second = list(range(1, 4)), list(range(4, 7))
        model_was_training = model.training
        model.eval()
        with torch.no_grad():
            packed = model(
                input_ids=torch.tensor([first + second]), position_ids=torch.tensor([[0, 1, 2, 0, 1, 2]])
            ).logits
            alone = model(input_ids=torch.tensor([second]), position_ids=torch.tensor([[0, 1, 2]])).logits
        model.train(model_was_training)
        if not torch.allclose(packed[0, 3:].float(), alone[0].float(), atol=1e-4, rtol=1e-3):
            raise ConfigError(
                f"model.packing=true: {type(model).__name__} lets packed examples attend to each other "
                "(it ignores restarted position ids); set model.packing=false"
            )

    @property
    def packs_examples(self) -> bool:
        return bool(self.cfg.packing)

    # ------------------------------------------------------------------ data

    def encode(self, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Prompt and response tokens; labels mask the prompt. Truncation keeps the
        start of the prompt and as much of the response as fits."""
        features = []
        for example in examples:
            prompt_ids = self.prompt_ids(example)
            feature = {"input_ids": prompt_ids, "attention_mask": [1] * len(prompt_ids)}
            if example.get("response") is not None:
                response_ids = self.tokenizer(str(example["response"]), add_special_tokens=False)["input_ids"]
                response_ids = response_ids + [self.tokenizer.eos_token_id]
                ids = (prompt_ids + response_ids)[: self.cfg.max_length]
                if len(prompt_ids) >= len(ids):
                    raise DataError(
                        f"a prompt of {len(prompt_ids)} tokens leaves no room for its response "
                        f"(model.max_length={self.cfg.max_length}): {example['text'][:60]!r}"
                    )
                feature = {
                    "input_ids": ids,
                    "attention_mask": [1] * len(ids),
                    "labels": [IGNORE] * len(prompt_ids) + ids[len(prompt_ids) :],
                }
            features.append(feature)
        return features

    def prompt_ids(self, example: dict[str, Any]) -> list[int]:
        """The prompt's token ids (:meth:`prompt`, tokenised without special tokens)."""
        return self.tokenizer(self.prompt(example), add_special_tokens=False)["input_ids"]

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Right-pad to the longest example; padded labels are ignored by the loss.
        With ``model.packing``, labelled examples are packed instead (:meth:`packed`)."""
        if self.cfg.packing and all("labels" in f for f in features):
            return self.packed(features)
        width = max(len(f["input_ids"]) for f in features)
        pad = self.tokenizer.pad_token_id
        batch = {
            "input_ids": torch.tensor([f["input_ids"] + [pad] * (width - len(f["input_ids"])) for f in features]),
            "attention_mask": torch.tensor(
                [f["attention_mask"] + [0] * (width - len(f["attention_mask"])) for f in features]
            ),
        }
        if all("labels" in f for f in features):
            batch["labels"] = torch.tensor([f["labels"] + [IGNORE] * (width - len(f["labels"])) for f in features])
        return batch

    def packed(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Examples laid end to end in rows of at most ``model.max_length`` tokens (first
        fit, in order). Position ids restart at each example, and there is no attention
        mask: transformers derives a block-diagonal causal mask from the position ids.
        An example's first token is never a target (the one before it belongs to
        another example); the padding ending a row is one more block, never a target."""
        rows: list[list[dict[str, Any]]] = []
        for feature in features:
            row = next(
                (
                    r
                    for r in rows
                    if sum(len(f["input_ids"]) for f in r) + len(feature["input_ids"]) <= self.cfg.max_length
                ),
                None,
            )
            if row is None:
                rows.append([feature])
            else:
                row.append(feature)
        width = max(sum(len(f["input_ids"]) for f in row) for row in rows)
        ids, positions, labels = [], [], []
        for row in rows:
            pad = width - sum(len(f["input_ids"]) for f in row)
            ids.append([t for f in row for t in f["input_ids"]] + [self.tokenizer.pad_token_id] * pad)
            positions.append([p for f in row for p in range(len(f["input_ids"]))] + list(range(pad)))
            labels.append([t for f in row for t in [IGNORE, *f["labels"][1:]]] + [IGNORE] * pad)
        return {"input_ids": torch.tensor(ids), "position_ids": torch.tensor(positions), "labels": torch.tensor(labels)}

    @staticmethod
    def targets(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The tokens the model must predict: position t predicts token t + 1."""
        return batch["labels"][:, 1:]

    def scored(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions and their targets (prompt tuning's virtual tokens come first and are dropped)."""
        return _own_positions(logits, batch)[:, :-1], self.targets(batch)

    def embed_inputs(self, model, texts: list[str], batch_size: int, device, dtype=None) -> np.ndarray:
        """Each prompt's mean last hidden state (what a drift monitor compares), with the
        logits of the last position only."""
        features = self.encode([{"text": text} for text in texts])
        return pooled_hidden_states(model, features, self.collate, batch_size, device, dtype, logits_to_keep=1)

    @staticmethod
    def answer_tokens(output: torch.Tensor, batch) -> torch.Tensor:
        """A decoder's output repeats the prompt; the answer follows it."""
        return output[:, batch["input_ids"].shape[1] :]


def _own_positions(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The logits at the input's own positions: prompt tuning prepends virtual tokens,
    whose outputs come first."""
    return logits[:, logits.shape[1] - batch["input_ids"].shape[1] :]


@hookimpl
def tunewright_register_models(registry):
    registry.add(
        "causal_lm",
        CausalLM,
        schema=CausalLMConfig,
        description="decoder supervised fine-tuning (GPT-2, LLaMA, ...): loss on responses, generation, exact match",
    )
