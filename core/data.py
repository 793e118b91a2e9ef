"""What every dataset part hands the pipeline, and the split logic they share.

A dataset part's factory takes its config node and returns an object with a
``load() -> DomainData`` method. Examples are plain dicts (``{"text": ..., "label": 1}``
for classification) so that any task's fields fit.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tunewright.errors import ConfigError, DataError

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


@cache
def media_sha256(path: str) -> str:
    """An image's or audio file's SHA-256 (cached: de-duplication and leakage checks ask twice)."""
    return file_sha256(Path(path))


def media_source(root: Path, paths: list[str], noun: str) -> dict[str, str]:
    """The manifest's data source for a set of media files (``noun``: "images", "audio
    files") under ``root``: one SHA-256 over their names (relative to ``root``, so moving
    the folder keeps it) and contents."""
    digest = hashlib.sha256()
    for path in sorted(set(paths)):
        digest.update(f"{os.path.relpath(path, root)}\0{media_sha256(path)}\n".encode())
    return {"path": f"{root} ({len(set(paths))} {noun})", "sha256": digest.hexdigest()}


_INTEGRAL = re.compile(r"[+-]?\d+\.0+")


def canonical_label(value: Any) -> str | None:
    """A label as tunewright compares labels; ``None`` when the row has none.

    Surrounding whitespace goes (``"pos "`` is ``"pos"``); an integral number is written
    as an integer whether it came as ``1``, ``1.0`` or ``"1.0"``; an empty value, NaN
    (``float("nan")`` or the text ``nan``) and null are missing labels. Anything else
    is kept as written: ``"Pos"`` and ``"pos"`` stay two labels.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(int(value)) if float(value).is_integer() else repr(value)
    if not isinstance(value, str):
        raise TypeError(type(value).__name__)
    text = value.strip()
    if not text or text.lower() == "nan":
        return None
    return text.split(".")[0] if _INTEGRAL.fullmatch(text) else text


def origin(path: Path | str, row: Any) -> dict[str, Any]:
    """Where an example came from, for the data card's list of dropped rows."""
    return {"source": str(path), "row": row}


def labelled_examples(
    path: Path,
    rows: Iterable[tuple[int, dict[str, Any], Any]],
    label_names: list[str],
    policy: str,
    notes: list[dict[str, Any]],
    split: str,
    label_map: Any = None,
) -> list[dict[str, Any]]:
    """Labelled examples from ``(row, fields, label)``: ``fields`` (``{"text": ...}`` and
    any of ``text_pair``, ``sensitive``) plus ``label`` mapped to its index and the
    row's ``origin``.

    Each label goes through :func:`canonical_label` and then ``label_map`` (pass
    ``data.label_map``: ``{0: negative, 1: positive}``); a rewritten label is counted in
    ``notes``, a missing one drops its row (listed in ``notes``). A label outside
    ``label_names`` is an error naming file and row, or, with ``policy="drop"``
    (``data.cleaning.unknown_labels``), a dropped row.
    """
    index = {name: i for i, name in enumerate(label_names)}
    mapping = label_mapping(label_map)
    examples, unknown, rewritten, dropped = [], Counter(), Counter(), []
    for row, fields, raw in rows:
        label = mapped_label(path, row, raw, mapping)
        if label is None:
            dropped.append({**origin(path, row), "split": split, "step": "missing_label", "reason": "no label"})
            continue
        if label != str(raw):
            rewritten[f"{raw!r} -> {label!r}"] += 1
        if label not in index:
            if policy != "drop":
                raise DataError(
                    f"{path}, row {row}: unknown label {label!r}; labels: {', '.join(label_names)}. Map it with "
                    f"data.label_map='{{{label}: <one of those>}}', skip such rows with data.cleaning.unknown_labels=drop"
                    ", or read the rows unlabelled with data.label_column=null"
                )
            unknown[label] += 1
            dropped.append(
                {**origin(path, row), "split": split, "step": "unknown_labels", "reason": f"label {label!r}"}
            )
            continue
        examples.append({**fields, "label": index[label], "origin": origin(path, row)})
    total = len(examples) + len(dropped)
    if rewritten:
        notes.append(
            {
                "split": split,
                "step": "normalise_labels",
                "rows_in": total,
                "rows_out": total,
                "rows_changed": sum(rewritten.values()),
                "reason": f"labels rewritten: {dict(rewritten)}",
            }
        )
    for step, reason in (
        ("missing_label", "empty, NaN or null labels"),
        ("unknown_labels", f"labels outside the label set: {dict(unknown)}"),
    ):
        rows_dropped = [entry for entry in dropped if entry["step"] == step]
        if rows_dropped:
            notes.append(
                {
                    "split": split,
                    "step": step,
                    "rows_in": total,
                    "rows_out": total - len(rows_dropped),
                    "reason": reason,
                    "dropped": rows_dropped,
                }
            )
    return examples


def label_mapping(label_map: Any) -> dict[str, str]:
    """``data.label_map`` with its keys and values as canonical labels."""
    given = label_map or {}
    if not hasattr(given, "items"):
        raise ConfigError(f"data.label_map={given!r}: give a mapping such as '{{0: negative, 1: positive}}'")
    return {canonical_label(key): canonical_label(value) for key, value in given.items()}


def mapped_label(path: Path, row: Any, raw: Any, mapping: dict[str, str]) -> str | None:
    """One row's label, canonical and mapped; a label that is a list or object is an error."""
    try:
        label = canonical_label(raw)
    except TypeError as kind:
        raise DataError(
            f"{path}, row {row}: the label is a {kind}, not a single value; point data.label_column "
            "at a column of labels"
        ) from None
    return mapping.get(label, label) if label is not None else None


def label_set(path: Path, rows: Iterable[tuple[Any, Any]], mapping: dict[str, str]) -> list[str]:
    """The sorted label names of ``(row, raw label)`` pairs, as :func:`labelled_examples` reads them."""
    return sorted({label for row, raw in rows if (label := mapped_label(path, row, raw, mapping)) is not None})


def require_two_classes(path: Path, column: str, examples: list[dict[str, Any]], label_names: list[str]) -> None:
    present = {e["label"] for e in examples}
    if len(present) < 2:
        only = label_names[next(iter(present))] if present else "(none)"
        raise DataError(
            f"{path}: label column {column!r} holds a single class ({only!r}); a classifier needs two or more"
        )


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
        splits = {
            name: stratified_subset(rows, round(cfg.limit * len(rows) / total), cfg.split_seed)
            for name, rows in splits.items()
        }
    missing = {
        name: fraction
        for name, fraction in (("test", cfg.test_fraction), ("validation", cfg.validation_fraction))
        if name not in splits and fraction > 0
    }
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
