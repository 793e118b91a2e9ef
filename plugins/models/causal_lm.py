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
Evaluation reports loss, perplexity and next-token accuracy on the responses; the
test split is also answered by greedy generation and scored by exact match, ROUGE-L
and chrF (computed here, no extra dependency: :mod:`.text_metrics`).
Generated answers are text, not class probabilities, so the bias audits (which need
them) do not apply to this task yet; the drift monitor records the prompts'
descriptors and mean hidden states (:meth:`CausalLM.embed_inputs`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunewright import hookimpl
from tunewright.errors import ConfigError, DataError
from tunewright.plugins.models.text_metrics import chrf, rouge_l
from tunewright.plugins.models.text_task import IGNORE, HubTextTask  # IGNORE: the prompt, the padding
from tunewright.schema import ModelConfig, knob
from tunewright.batching import length_sorted_order
from tunewright.inference import pooled_hidden_states, to_device
from tunewright.precision import autocast



@dataclass
class CausalLMConfig(ModelConfig):
    prompt_template: str = "{prompt}\n### Response:\n"  # when the tokenizer has no chat template
    use_chat_template: bool = True
    max_new_tokens: int = knob(32, low=1)  # generated tokens per test answer
    generate_test_examples: int = knob(200, low=0)  # test prompts answered by generation (exact match); 0: none
    packing: bool = False  # lay a batch's examples end to end in rows of max_length: less padding


class CausalLM(HubTextTask):
    """A decoder trained to answer prompts: ``{"text", "response"}`` examples in, text out."""

    pipeline_tag = "text-generation"  # the Hugging Face task the model card names
    peft_task_type = "CAUSAL_LM"
    generates = True
    example_fields = ("text", "messages", "response")
    head_is_new = False  # the language-model head is pre-trained (and often tied to the embeddings)
    class_probabilities = False  # no audits or drift monitors for generated text yet

    @property
    def tokenizer(self):
        tokenizer = super().tokenizer
        if tokenizer.pad_token is None:  # decoders often ship without one; padding is masked anyway
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

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
            packed = model(input_ids=torch.tensor([first + second]), position_ids=torch.tensor([[0, 1, 2, 0, 1, 2]])).logits
            alone = model(input_ids=torch.tensor([second]), position_ids=torch.tensor([[0, 1, 2]])).logits
        model.train(model_was_training)
        if not torch.allclose(packed[0, 3:].float(), alone[0].float(), atol=1e-4, rtol=1e-3):
            raise ConfigError(f"model.packing=true: {type(model).__name__} lets packed examples attend to each other "
                              "(it ignores restarted position ids); set model.packing=false")  # fmt: skip

    def _identity(self) -> dict[str, Any]:
        return {**super()._identity(), "prompt": self.cfg.prompt_template, "chat": self.cfg.use_chat_template}

    @property
    def packs_examples(self) -> bool:
        return bool(self.cfg.packing)

    # ------------------------------------------------------------------ data

    def prepare(self, examples: list[dict[str, Any]], label_names: list[str]) -> list[dict[str, Any]]:
        """A labelled example without a response answers with its label's name."""
        prepared = []
        for example in examples:
            if example.get("response") is None:
                if example.get("label") is None:
                    raise DataError(f"an example has neither a response nor a label: {example['text'][:60]!r}; "
                                    "map one with data.response_column or data.label_column")  # fmt: skip
                example = {**example, "response": label_names[example["label"]]}
            prepared.append(example)
        return prepared

    def prompt(self, example: dict[str, Any] | str) -> str:
        """The model's input before the answer: a chat turn (or a whole conversation, for
        ``messages`` examples) through the chat template, or ``model.prompt_template``."""
        if isinstance(example, str):
            example = {"text": example}
        if self.cfg.use_chat_template and getattr(self.tokenizer, "chat_template", None):
            conversation = example.get("messages", [None])[:-1] or [{"role": "user", "content": example["text"]}]
            return self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        return self.cfg.prompt_template.format(prompt=example["text"])

    def encode(self, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Prompt and response tokens; labels mask the prompt. Truncation keeps the
        start of the prompt and as much of the response as fits."""
        features = []
        for example in examples:
            prompt_ids = self.tokenizer(self.prompt(example), add_special_tokens=False)["input_ids"]
            feature = {"input_ids": prompt_ids, "attention_mask": [1] * len(prompt_ids)}
            if example.get("response") is not None:
                response_ids = self.tokenizer(str(example["response"]), add_special_tokens=False)["input_ids"]
                response_ids = response_ids + [self.tokenizer.eos_token_id]
                ids = (prompt_ids + response_ids)[: self.cfg.max_length]
                if len(prompt_ids) >= len(ids):
                    raise DataError(f"a prompt of {len(prompt_ids)} tokens leaves no room for its response "
                                    f"(model.max_length={self.cfg.max_length}): {example['text'][:60]!r}")  # fmt: skip
                feature = {"input_ids": ids, "attention_mask": [1] * len(ids),
                           "labels": [IGNORE] * len(prompt_ids) + ids[len(prompt_ids):]}  # fmt: skip
            features.append(feature)
        return features

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Right-pad to the longest example; padded labels are ignored by the loss.
        With ``model.packing``, labelled examples are packed instead (:meth:`packed`)."""
        if self.cfg.packing and all("labels" in f for f in features):
            return self.packed(features)
        width = max(len(f["input_ids"]) for f in features)
        pad = self.tokenizer.pad_token_id
        batch = {
            "input_ids": torch.tensor([f["input_ids"] + [pad] * (width - len(f["input_ids"])) for f in features]),
            "attention_mask": torch.tensor([f["attention_mask"] + [0] * (width - len(f["attention_mask"])) for f in features]),
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
            row = next((r for r in rows if sum(len(f["input_ids"]) for f in r) + len(feature["input_ids"]) <= self.cfg.max_length), None)
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

    def loss_sum(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed cross-entropy over response tokens."""
        predicted, targets = self.scored(logits, batch)
        return torch.nn.functional.cross_entropy(predicted.float().reshape(-1, predicted.shape[-1]), targets.reshape(-1),
                                                 ignore_index=IGNORE, reduction="sum")  # fmt: skip

    def loss_count(self, batch: dict[str, torch.Tensor]) -> int:
        return int((self.targets(batch) != IGNORE).sum())

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def evaluate(self, model, features: list[dict], batch_size: int, device, dtype=None) -> tuple[dict[str, float], None]:
        """Loss, perplexity and next-token accuracy over the response tokens, batch by
        batch (never the whole vocabulary-sized logits at once)."""
        model.eval()
        loss, correct, count = 0.0, 0, 0
        order = length_sorted_order([len(f["input_ids"]) for f in features])
        for start in range(0, len(order), batch_size):
            batch = to_device(self.collate([features[i] for i in order[start : start + batch_size]]), device)
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            with autocast(device, dtype):
                logits = model(**inputs).logits
            loss += self.loss_sum(logits, batch).item()
            predicted, targets = self.scored(logits, batch)
            mask = targets != IGNORE
            correct += int(((predicted.argmax(-1) == targets) & mask).sum())
            count += int(mask.sum())
        mean = loss / max(count, 1)
        return {"loss": mean, "perplexity": math.exp(min(mean, 50.0)), "token_accuracy": correct / max(count, 1)}, None

    @torch.no_grad()
    def generate(self, model, texts: list[str | dict[str, Any]], device, batch_size: int = 16) -> list[str]:
        """Greedy answers to ``texts`` (or examples), encoded as in training and
        left-padded so that every answer starts right after its prompt."""
        model.eval()
        pad = self.tokenizer.pad_token_id
        prompts = [{"text": t} if isinstance(t, str) else {k: v for k, v in t.items() if k in ("text", "messages")} for t in texts]
        answers = []
        for start in range(0, len(prompts), batch_size):
            features = self.encode(prompts[start : start + batch_size])
            width = max(len(f["input_ids"]) for f in features)
            batch = {
                "input_ids": torch.tensor([[pad] * (width - len(f["input_ids"])) + f["input_ids"] for f in features]),
                "attention_mask": torch.tensor([[0] * (width - len(f["input_ids"])) + f["attention_mask"] for f in features]),
            }
            batch = to_device(batch, device)
            output = model.generate(**batch, max_new_tokens=self.cfg.max_new_tokens, do_sample=False, pad_token_id=pad)
            answers += [text.strip() for text in self.tokenizer.batch_decode(self.answer_tokens(output, batch), skip_special_tokens=True)]
        return answers

    def embed_inputs(self, model, texts: list[str], batch_size: int, device, dtype=None) -> np.ndarray:
        """Each prompt's mean last hidden state (what a drift monitor compares), with the
        logits of the last position only."""
        features = self.encode([{"text": text} for text in texts])
        return pooled_hidden_states(model, features, self.collate, batch_size, device, dtype, logits_to_keep=1)

    def predict_inputs(self, model, texts: list[str], device) -> list[dict[str, str]]:
        """``{"response": answer}`` per prompt, by greedy generation."""
        return [{"response": answer} for answer in self.generate(model, texts, device)]

    @staticmethod
    def answer_tokens(output: torch.Tensor, batch) -> torch.Tensor:
        """A decoder's output repeats the prompt; the answer follows it."""
        return output[:, batch["input_ids"].shape[1] :]

    def test_predictions(self, model, examples: list[dict[str, Any]], outputs, label_names: list[str], device) -> tuple[list[dict], dict]:
        """Generated answers for the first ``generate_test_examples`` test prompts, and
        their exact-match rate against the responses."""
        chosen = examples[: self.cfg.generate_test_examples]
        answers = self.generate(model, chosen, device) if chosen else []
        rows = [{**e, "prediction": {"response": a}} for e, a in zip(chosen, answers)]
        if not answers:
            return rows, {}
        truths = [str(e["response"]) for e in chosen]
        return rows, {
            "exact_match": float(np.mean([a.strip().lower() == t.strip().lower() for a, t in zip(answers, truths)])),
            "rouge_l": float(np.mean([rouge_l(a, t) for a, t in zip(answers, truths)])),
            "chrf": chrf(answers, truths),
        }


def _own_positions(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The logits at the input's own positions: prompt tuning prepends virtual tokens,
    whose outputs come first."""
    return logits[:, logits.shape[1] - batch["input_ids"].shape[1] :]


@hookimpl
def tunewright_register_models(registry):
    registry.add("causal_lm", CausalLM, schema=CausalLMConfig,
                 description="decoder supervised fine-tuning (GPT-2, LLaMA, ...): loss on responses, generation, exact match")  # fmt: skip
