"""What the text-generation tasks share, composed by :mod:`.causal_lm` (a decoder) and
:mod:`.seq2seq_lm` (an encoder-decoder): prompts (chat template or
``model.prompt_template``), labels turned into answers, the loss over answer tokens,
batch-by-batch evaluation (loss, perplexity, next-token accuracy), greedy generation
and the generated answers' exact match, ROUGE-L and chrF.

Each task adds how it loads its model, encodes and batches examples, which logits
score which tokens (``targets``, ``scored``), and where a generated answer starts
(``answer_tokens``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers.generation.streamers import BaseStreamer

from tunewright.batching import length_sorted_order
from tunewright.errors import DataError
from tunewright.inference import batches_with_logits, to_device
from tunewright.plugins.models.text_metrics import chrf, rouge_l
from tunewright.plugins.models.text_task import IGNORE, HubTextTask  # IGNORE: the prompt, the padding
from tunewright.schema import ModelConfig, knob


@dataclass
class GenerationConfig(ModelConfig):
    prompt_template: str = "{prompt}\n### Response:\n"  # when the tokenizer has no chat template
    use_chat_template: bool = True
    max_new_tokens: int = knob(32, low=1)  # generated tokens per test answer
    generate_test_examples: int = knob(200, low=0)  # test prompts answered by generation (exact match); 0: none


class TextGenerationTask(HubTextTask):
    """A model trained to answer prompts: ``{"text", "response"}`` examples in, text out."""

    generates = True
    example_fields = ("text", "messages", "response")
    head_is_new = False  # the language-model head is pre-trained (and often tied to the embeddings)
    class_probabilities = False  # no audits for generated text yet; monitors use embed_inputs

    @property
    def tokenizer(self):
        tokenizer = super().tokenizer
        if tokenizer.pad_token is None:  # decoders often ship without one; padding is masked anyway
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    def _identity(self) -> dict[str, Any]:
        return {**super()._identity(), "prompt": self.cfg.prompt_template, "chat": self.cfg.use_chat_template}

    # ------------------------------------------------------------------ data

    def prepare(self, examples: list[dict[str, Any]], label_names: list[str]) -> list[dict[str, Any]]:
        """A labelled example without a response answers with its label's name."""
        prepared = []
        for example in examples:
            if example.get("response") is None:
                if example.get("label") is None:
                    raise DataError(
                        f"an example has neither a response nor a label: {example['text'][:60]!r}; "
                        "map one with data.response_column or data.label_column"
                    )
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

    def media_inputs(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Model inputs besides the tokens that a batch of ``features`` needs (a
        vision-language model's pixels); none for text."""
        return {}

    # ------------------------------------------------------------------ objective

    @staticmethod
    def targets(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The tokens the model must predict."""
        raise NotImplementedError

    def scored(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits that predict :meth:`targets`, and the targets."""
        raise NotImplementedError

    def loss_sum(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed cross-entropy over response tokens."""
        predicted, targets = self.scored(logits, batch)
        return torch.nn.functional.cross_entropy(
            predicted.float().reshape(-1, predicted.shape[-1]),
            targets.reshape(-1),
            ignore_index=IGNORE,
            reduction="sum",
        )

    def loss_count(self, batch: dict[str, torch.Tensor]) -> int:
        return int((self.targets(batch) != IGNORE).sum())

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def evaluate(
        self, model, features: list[dict], batch_size: int, device, dtype=None
    ) -> tuple[dict[str, float], None]:
        """Loss, perplexity and next-token accuracy over the response tokens, batch by
        batch (never the whole vocabulary-sized logits at once)."""
        model.eval()
        loss, correct, count = 0.0, 0, 0
        order = length_sorted_order([len(f["input_ids"]) for f in features])
        for _, batch, logits in batches_with_logits(model, features, order, self.collate, batch_size, device, dtype):
            loss += self.loss_sum(logits, batch).item()
            predicted, targets = self.scored(logits, batch)
            mask = targets != IGNORE
            correct += int(((predicted.argmax(-1) == targets) & mask).sum())
            count += int(mask.sum())
        mean = loss / max(count, 1)
        return {"loss": mean, "perplexity": math.exp(min(mean, 50.0)), "token_accuracy": correct / max(count, 1)}, None

    @torch.no_grad()
    def generate(
        self,
        model,
        texts: list[str | dict[str, Any]],
        device,
        batch_size: int = 16,
        max_new_tokens: int | None = None,
        streamer: AnswerStream | None = None,
    ) -> list[str]:
        """Greedy answers to ``texts`` (or examples), encoded as in training and
        left-padded so that every answer starts right after its prompt; at most
        ``max_new_tokens`` tokens each (``model.max_new_tokens`` by default). A
        ``streamer`` (one text) is handed the answer's tokens as they are generated."""
        model.eval()
        pad = self.tokenizer.pad_token_id
        asked = [field for field in self.example_fields if field != "response"]
        prompts = [{"text": t} if isinstance(t, str) else {k: v for k, v in t.items() if k in asked} for t in texts]
        answers = []
        for start in range(0, len(prompts), batch_size):
            features = self.encode(prompts[start : start + batch_size])
            width = max(len(f["input_ids"]) for f in features)
            batch = {
                "input_ids": torch.tensor([[pad] * (width - len(f["input_ids"])) + f["input_ids"] for f in features]),
                "attention_mask": torch.tensor(
                    [[0] * (width - len(f["input_ids"])) + f["attention_mask"] for f in features]
                ),
            }
            batch = to_device({**batch, **self.media_inputs(features)}, device)
            limit = max_new_tokens or self.cfg.max_new_tokens
            output = model.generate(**batch, max_new_tokens=limit, do_sample=False, pad_token_id=pad, streamer=streamer)
            answers += [
                text.strip()
                for text in self.tokenizer.batch_decode(self.answer_tokens(output, batch), skip_special_tokens=True)
            ]
        return answers

    def predict_inputs(self, model, texts: list[str], device) -> list[dict[str, str]]:
        """``{"response": answer}`` per prompt, by greedy generation."""
        return [{"response": answer} for answer in self.generate(model, texts, device)]

    def chat(
        self,
        model,
        conversations: list[list[dict[str, str]]],
        device,
        max_new_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> list[str]:
        """Greedy answers to conversations, prompted as training prompts ``messages``
        examples (the chat template, or ``model.prompt_template`` on the last user turn);
        ``on_text`` (one conversation) gets the answer piece by piece as it is generated."""
        examples = [self.chat_example(turns) for turns in conversations]
        if on_text is not None and len(examples) != 1:
            raise ValueError("chat: on_text streams one conversation at a time")
        streamer = AnswerStream(self.tokenizer, on_text) if on_text is not None else None
        return self.generate(model, examples, device, max_new_tokens=max_new_tokens, streamer=streamer)

    def chat_example(self, turns: list[dict[str, Any]]) -> dict[str, Any]:
        """A conversation as the ``messages`` example its prompt is built from."""
        return {"messages": [*turns, {"role": "assistant", "content": ""}], "text": turns[-1]["content"]}

    @staticmethod
    def answer_tokens(output: torch.Tensor, batch) -> torch.Tensor:
        """The answer within ``model.generate``'s output."""
        raise NotImplementedError

    def test_predictions(
        self, model, examples: list[dict[str, Any]], outputs, label_names: list[str], device
    ) -> tuple[list[dict], dict]:
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


class AnswerStream(BaseStreamer):
    """Hands ``on_text`` each new piece of one answer while ``generate`` runs.

    ``generate`` puts the prompt first (skipped), then each new token. The tokens so far
    are decoded whole every time, as the finished answer is, and only text that is
    settled is sent: leading whitespace dropped, trailing whitespace and a character
    cut in half held back. So the pieces join to exactly the answer ``generate`` returns.
    """

    def __init__(self, tokenizer, on_text: Callable[[str], None]):
        self.tokenizer = tokenizer
        self.on_text = on_text
        self.tokens: list[int] = []
        self.sent = ""
        self.prompt_pending = True

    def put(self, value: torch.Tensor) -> None:
        if self.prompt_pending:
            self.prompt_pending = False
            return
        self.tokens.extend(value.reshape(-1).tolist())
        text = self._decoded().lstrip()
        if not text.endswith("\ufffd"):
            self._send(text.rstrip())

    def end(self) -> None:
        self._send(self._decoded().strip())

    def _decoded(self) -> str:
        return self.tokenizer.decode(self.tokens, skip_special_tokens=True)

    def _send(self, text: str) -> None:
        if len(text) > len(self.sent) and text.startswith(self.sent):
            self.on_text(text[len(self.sent) :])
            self.sent = text
