"""``kind: token_classification``: a tag per word (named entities, parts of speech) from
an encoder through ``AutoModelForTokenClassification``.

Examples are words with one tag each (``data.words_column``, ``data.tags_column``;
tags in BIO form such as ``B-PER``, ``I-PER``, ``O`` for entities). Words are split
into sub-word tokens; a word's first token carries its tag and the rest are ignored by
the loss, so every word counts once. Evaluation reports the loss, accuracy over words,
and entity precision, recall and F1 over exact spans (type and boundaries), computed in
the project. ``predict`` splits a text on whitespace and answers each word's tag and
the entities found. A tag per word is not a class probability per example, so the bias
audits and drift monitors do not apply to this task (the run says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tunewright import hookimpl
from tunewright.batching import length_sorted_order
from tunewright.entities import entities, entity_scores
from tunewright.errors import ConfigError
from tunewright.inference import batches_with_logits, pooled_hidden_states
from tunewright.plugins.models.classification import label_head
from tunewright.plugins.models.text_task import IGNORE, HubTextTask  # IGNORE: later pieces of a word, specials, padding

NO_WORD = -1  # a token that belongs to no word (special tokens), in a feature's word_ids


class TokenClassification(HubTextTask):
    """A tagger: ``{"words", "tags"}`` examples in, a tag per word out."""

    pipeline_tag = "token-classification"  # the Hugging Face task the model card names
    peft_task_type = "TOKEN_CLS"
    head_modules = ("classifier",)  # trained in full beside any adapter
    example_fields = ("text", "words", "tags")
    class_probabilities = False  # a tag per word: the audits and monitors judge one label per example
    edge_answers = "tags"  # token ids in, tag logits per token out: tunewright export format=onnx

    def load_pretrained(self, label_names: list[str], source: str | Path | None = None, **options):
        from transformers import AutoModelForTokenClassification

        return self.load_with(AutoModelForTokenClassification, source, **label_head(label_names), **options)

    def encode(self, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Sub-word tokens of each example's words, the word each token comes from, and
        (when tagged) the tag on each word's first token."""
        if not self.tokenizer.is_fast:
            raise ConfigError(
                f"model=token_classification needs a fast tokenizer (word alignment); {self.cfg.name_or_path} has none"
            )
        words = [example.get("words") or example["text"].split() for example in examples]
        encoded = self.tokenizer(words, is_split_into_words=True, truncation=True, max_length=self.cfg.max_length)
        features = []
        for i, example in enumerate(examples):
            word_ids = [NO_WORD if w is None else w for w in encoded.word_ids(i)]
            feature = {
                "input_ids": encoded["input_ids"][i],
                "attention_mask": encoded["attention_mask"][i],
                "word_ids": word_ids,
            }
            if "tags" in example:
                feature["labels"] = [
                    example["tags"][w] if w != NO_WORD and (j == 0 or word_ids[j - 1] != w) else IGNORE
                    for j, w in enumerate(word_ids)
                ]
            features.append(feature)
        return features

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Right-padded tokens; labels padded with the ignored label (word ids stay out:
        they are not a model input)."""
        inputs = [{"input_ids": f["input_ids"], "attention_mask": f["attention_mask"]} for f in features]
        batch = dict(self.tokenizer.pad(inputs, return_tensors="pt"))
        if all("labels" in f for f in features):
            width = batch["input_ids"].shape[1]
            batch["labels"] = torch.tensor([f["labels"] + [IGNORE] * (width - len(f["labels"])) for f in features])
        return batch

    @staticmethod
    def _own_positions(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The logits at the input's own tokens (prompt tuning prepends virtual ones)."""
        return logits[:, logits.shape[1] - batch["input_ids"].shape[1] :]

    def loss_sum(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed cross-entropy over the tagged tokens (one per word)."""
        logits = self._own_positions(logits, batch)
        return torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]),
            batch["labels"].reshape(-1),
            ignore_index=IGNORE,
            reduction="sum",
        )

    @staticmethod
    def loss_count(batch: dict[str, torch.Tensor]) -> int:
        return int((batch["labels"] != IGNORE).sum())

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def word_tags(
        self, model, features: list[dict], batch_size: int, device, dtype=None
    ) -> tuple[list[list[int]], float, int]:
        """Each example's predicted tag per word (the word's first token decides), and
        the summed loss and tagged-word count when the features carry tags."""
        model.eval()
        predicted: list[list[int]] = [[] for _ in features]
        loss, count = 0.0, 0
        order = length_sorted_order([len(f["input_ids"]) for f in features])
        for chosen, batch, logits in batches_with_logits(
            model, features, order, self.collate, batch_size, device, dtype
        ):
            if "labels" in batch:
                loss += self.loss_sum(logits, batch).item()
                count += self.loss_count(batch)
            best = self._own_positions(logits, batch).argmax(-1).cpu().tolist()
            for row, index in enumerate(chosen):
                word_ids = features[index]["word_ids"]
                predicted[index] = [
                    best[row][j] for j, w in enumerate(word_ids) if w != NO_WORD and (j == 0 or word_ids[j - 1] != w)
                ]
        return predicted, loss, count

    def evaluate(
        self, model, features: list[dict], batch_size: int, device, dtype=None
    ) -> tuple[dict[str, float], list]:
        """Loss, word accuracy and entity precision/recall/F1 over one split; the
        predicted tags (ids per word) are the outputs ``test_predictions`` reads."""
        predicted, loss, count = self.word_tags(model, features, batch_size, device, dtype)
        truths = [[label for label in f["labels"] if label != IGNORE] for f in features]
        names = tag_names(model)
        correct = sum(p == t for ps, ts in zip(predicted, truths) for p, t in zip(ps, ts))
        words = sum(len(ts) for ts in truths)
        scores = entity_scores([[names[t] for t in ts] for ts in truths], [[names[p] for p in ps] for ps in predicted])
        return {"loss": loss / max(count, 1), "accuracy": correct / max(words, 1), **scores}, predicted

    def test_predictions(
        self, model, examples: list[dict[str, Any]], outputs, label_names: list[str], device
    ) -> tuple[list[dict], dict]:
        """Each test example with its tags by name and the predicted tags and entities."""
        rows = []
        for example, predicted in zip(examples, outputs):
            words = example["words"]
            tags = [label_names[p] for p in predicted] + ["O"] * (
                len(words) - len(predicted)
            )  # words cut by max_length
            rows.append(
                {
                    **example,
                    "tags": [label_names[t] for t in example["tags"]],
                    "prediction": {"tags": tags, "entities": entities(words, tags)},
                }
            )
        return rows, {}

    def embed_inputs(self, model, texts: list[str], batch_size: int, device, dtype=None):
        """Each text's mean last hidden state (what a drift monitor compares)."""
        features = self.encode([{"words": text.split()} for text in texts])
        return pooled_hidden_states(model, features, self.collate, batch_size, device, dtype)

    def predict_inputs(self, model, texts: list[str], device, batch_size: int = 32) -> list[dict[str, Any]]:
        """``{"words", "tags", "entities"}`` per text, split into words on whitespace."""
        names = tag_names(model)
        examples = [{"words": text.split()} for text in texts]
        predicted, _, _ = self.word_tags(model, self.encode(examples), batch_size, device)
        answers = []
        for example, ids in zip(examples, predicted):
            tags = [names[i] for i in ids] + ["O"] * (len(example["words"]) - len(ids))
            answers.append({"words": example["words"], "tags": tags, "entities": entities(example["words"], tags)})
        return answers


def tag_names(model) -> list[str]:
    """The tag names in id order, as the model's config holds them."""
    return [str(model.config.id2label[i]) for i in sorted(model.config.id2label)]


@hookimpl
def tunewright_register_models(registry):
    registry.add(
        "token_classification",
        TokenClassification,
        description="a tag per word (named entities) with an encoder: word accuracy, entity F1",
    )
