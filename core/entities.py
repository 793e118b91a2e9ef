"""Entities from BIO tags (``B-PER``, ``I-PER``, ``O``): the spans a tagger found, and
precision, recall and F1 over exact spans. Plain Python, so the edge runtime, which has
no PyTorch, names entities as the run does."""

from __future__ import annotations

from typing import Any


def spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """Entity spans ``(start, end, type)`` (end exclusive) from BIO tags: ``B-X`` opens
    one, ``I-X`` continues an ``X`` (or opens one after anything else), ``O`` closes."""
    found, start, kind = [], None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, name = tag.partition("-")
        continues = prefix == "I" and kind == name and start is not None
        if start is not None and not continues:
            found.append((start, i, kind))
            start, kind = None, None
        if prefix in ("B", "I") and not continues:
            start, kind = i, name
    return found


def entity_scores(truths: list[list[str]], predictions: list[list[str]]) -> dict[str, float]:
    """Micro-averaged precision, recall and F1 over exact entity spans."""
    true_count = predicted_count = matched = 0
    for truth, prediction in zip(truths, predictions):
        expected, found = set(spans(truth)), set(spans(prediction))
        true_count, predicted_count, matched = (
            true_count + len(expected),
            predicted_count + len(found),
            matched + len(expected & found),
        )
    precision = matched / predicted_count if predicted_count else 0.0
    recall = matched / true_count if true_count else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"entity_precision": precision, "entity_recall": recall, "entity_f1": f1}


def entities(words: list[str], tags: list[str]) -> list[dict[str, Any]]:
    return [
        {"type": kind, "text": " ".join(words[start:end]), "start": start, "end": end}
        for start, end, kind in spans(tags)
    ]
