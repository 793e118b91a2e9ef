"""Cheap, telling numbers about each text, compared between reference and new data.

A shift in any of them is visible without the model: longer texts, another alphabet,
markup or numbers, or vocabulary the tokenizer does not know (``subword_share``: the
share of words it has no single token for, so they are split or unknown).
"""

from __future__ import annotations

import re

import numpy as np

WORD = re.compile(r"\w+", re.UNICODE)
DESCRIPTORS = ("characters", "words", "mean_word_length", "non_letter_share", "uppercase_share", "subword_share")


def text_descriptors(texts: list[str], tokenizer) -> dict[str, np.ndarray]:
    """Each descriptor in :data:`DESCRIPTORS` as one value per text."""
    words = [WORD.findall(text) for text in texts]
    split_words = _words_without_single_token(sorted({w.lower() for ws in words for w in ws}), tokenizer)
    columns: dict[str, list[float]] = {name: [] for name in DESCRIPTORS}
    for text, text_words in zip(texts, words):
        visible = [c for c in text if not c.isspace()]
        letters = [c for c in visible if c.isalpha()]
        columns["characters"].append(len(text))
        columns["words"].append(len(text_words))
        columns["mean_word_length"].append(float(np.mean([len(w) for w in text_words])) if text_words else 0.0)
        columns["non_letter_share"].append(1 - len(letters) / len(visible) if visible else 0.0)
        columns["uppercase_share"].append(sum(c.isupper() for c in letters) / len(letters) if letters else 0.0)
        columns["subword_share"].append(
            sum(w.lower() in split_words for w in text_words) / len(text_words) if text_words else 0.0
        )
    return {name: np.asarray(values, dtype=float) for name, values in columns.items()}


def _words_without_single_token(words: list[str], tokenizer) -> set[str]:
    """The words ``tokenizer`` splits into several pieces or maps to its unknown token."""
    if not words:
        return set()
    pieces = tokenizer(words, add_special_tokens=False)["input_ids"]
    unknown = tokenizer.unk_token_id
    return {word for word, ids in zip(words, pieces) if len(ids) != 1 or ids[0] == unknown}
