"""What every dataset part hands the pipeline, and the split logic they share.

A dataset part's factory takes its config node and returns an object with a
``load() -> DomainData`` method. Examples are plain dicts (``{"text": ..., "label": 1}``
for classification) so that any task's fields fit.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from tunewright.errors import DataError

SPLITS = ("train", "validation", "test")


@dataclass
class DomainData:
    """Examples by split, the label names, and where they came from."""

    splits: dict[str, list[dict[str, Any]]]
    label_names: list[str]
    sources: list[dict[str, str]] = field(default_factory=list)  # {"path", "sha256"}
    load_notes: list[dict[str, Any]] = field(default_factory=list)  # rows a loader dropped, and why


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def labelled_examples(
    path: Path,
    rows: Iterable[tuple[int, dict[str, Any], Any]],
    label_names: list[str],
    policy: str,
    notes: list[dict[str, Any]],
    split: str,
) -> list[dict[str, Any]]:
    """Labelled examples from ``(row, fields, label)``: ``fields`` (``{"text": ...}`` and
    any of ``text_pair``, ``sensitive``) plus ``label`` mapped to its index.

    A label outside ``label_names`` is an error naming file and row, or, with
    ``data.cleaning.unknown_labels=drop``, a dropped row counted in ``notes``.
    """
    index = {name: i for i, name in enumerate(label_names)}
    examples, unknown = [], Counter()
    for row, fields, label in rows:
        label = str(label)
        if label not in index:
            if policy != "drop":
                raise DataError(
                    f"{path}, row {row}: unknown label {label!r}; labels: {', '.join(label_names)} "
                    "(data.cleaning.unknown_labels=drop skips such rows)"
                )
            unknown[label] += 1
            continue
        examples.append({**fields, "label": index[label]})
    if unknown:
        kept = len(examples)
        notes.append({"split": split, "step": "unknown_labels", "rows_in": kept + sum(unknown.values()),
                      "rows_out": kept, "reason": f"labels outside the label set: {dict(unknown)}"})  # fmt: skip
    return examples


def require_two_classes(path: Path, column: str, examples: list[dict[str, Any]], label_names: list[str]) -> None:
    present = {e["label"] for e in examples}
    if len(present) < 2:
        only = label_names[next(iter(present))] if present else "(none)"
        raise DataError(f"{path}: label column {column!r} holds a single class ({only!r}); a classifier needs two or more")


def split_given(given: dict[str, list[dict]], cfg) -> dict[str, list[dict]]:
    """Use a source's own splits as given; carve what is missing (validation, then test)
    from train, stratified and seeded. ``data.limit`` shrinks every split in proportion.

    With both fractions 0 and no given evaluation splits, every example stays in
    ``train`` in source order (how ``tunewright monitor`` reads a batch).
    """
    if not 0 <= cfg.validation_fraction < 1 or not 0 <= cfg.test_fraction < 1:
        raise DataError(
            f"data.validation_fraction={cfg.validation_fraction} and data.test_fraction={cfg.test_fraction} "
            "must lie in [0, 1)"
        )
    if cfg.validation_fraction + cfg.test_fraction >= 1:
        raise DataError(
            f"data.validation_fraction + data.test_fraction = {cfg.validation_fraction + cfg.test_fraction} "
            "leaves no training data"
        )
    splits = {name: rows for name, rows in given.items() if rows is not None}
    if cfg.limit is not None:
        total = sum(len(rows) for rows in splits.values())
        splits = {name: stratified_subset(rows, round(cfg.limit * len(rows) / total), cfg.split_seed) for name, rows in splits.items()}
    missing = {name: fraction for name, fraction in (("test", cfg.test_fraction), ("validation", cfg.validation_fraction))
               if name not in splits and fraction > 0}  # fmt: skip
    if missing:
        splits.update(_allocate(splits["train"], missing, cfg.split_seed))
    wanted = ["train"] + (["test"] if "test" in given or cfg.test_fraction > 0 else [])
    for name in wanted:
        if not splits.get(name):
            raise DataError(
                f"split {name!r} is empty: {sum(map(len, splits.values()))} examples are too few for "
                f"data.validation_fraction={cfg.validation_fraction}, data.test_fraction={cfg.test_fraction}"
            )
    return splits


def stratified_subset(examples: list[dict], size: int, seed: int) -> list[dict]:
    """At most ``size`` examples, keeping each label's share."""
    if size >= len(examples):
        return examples
    shares = _allocate(examples, {"keep": size / len(examples)}, seed)
    return shares["keep"]


def _allocate(examples: list[dict], fractions: dict[str, float], seed: int) -> dict[str, list[dict]]:
    """Deal each label's shuffled examples into the named fractions; the rest is ``train``."""
    by_label: dict[Any, list[dict]] = defaultdict(list)
    for example in examples:
        by_label[example["label"]].append(example)
    rng = random.Random(seed)
    out: dict[str, list[dict]] = {name: [] for name in [*fractions, "train"]}
    for label in sorted(by_label, key=str):
        group = by_label[label][:]
        rng.shuffle(group)
        start = 0
        for name, fraction in fractions.items():
            count = round(len(group) * fraction)
            out[name].extend(group[start : start + count])
            start += count
        out["train"].extend(group[start:])
    for name in out:
        rng.shuffle(out[name])
    return out
