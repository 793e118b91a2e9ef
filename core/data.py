"""What every dataset part hands the pipeline, and the split logic they share.

A dataset part's factory takes its config node and returns an object with a
``load() -> DomainData`` method. Examples are plain dicts (``{"text": ..., "label": 1}``
for classification) so that any task's fields fit.
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewright.errors import DataError

SPLITS = ("train", "validation", "test")


@dataclass
class DomainData:
    """Examples by split, the label names, and where they came from."""

    splits: dict[str, list[dict[str, Any]]]
    label_names: list[str]
    sources: list[dict[str, str]] = field(default_factory=list)  # {"path", "sha256"}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_tab_labelled_lines(path: Path) -> list[dict[str, Any]]:
    """Read ``sentence<TAB>0|1`` lines (the Sentiment Labelled Sentences format).

    Lines are split on ``\\n`` only and never unquoted: the source files hold stray
    quotes and U+0085 characters that a CSV reader would mangle.
    """
    examples = []
    with path.open(encoding="utf-8", newline="\n") as handle:
        for row, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            text, sep, label = line.rpartition("\t")
            if not sep or label.strip() not in ("0", "1"):
                raise DataError(
                    f"{path}, row {row}: expected 'sentence<TAB>0|1', got {line[:80]!r}"
                )
            examples.append({"text": text.strip(), "label": int(label)})
    return examples


def read_labelled_csv(path: Path, text_column: str, label_column: str, label_names: list[str]) -> list[dict[str, Any]]:
    """Read a CSV with a header into ``{"text", "label"}`` examples (label as an index).

    A missing column or a label outside ``label_names`` is a :class:`DataError` naming
    the file and the row (counting the header as row 1).
    """
    index = {name: i for i, name in enumerate(label_names)}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in (text_column, label_column) if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: no column {', '.join(map(repr, missing))}; columns: {reader.fieldnames}")
        examples = []
        for row in reader:
            label = row[label_column]
            if label not in index:
                raise DataError(f"{path}, row {reader.line_num}: unknown label {label!r}")
            examples.append({"text": row[text_column].strip(), "label": index[label]})
    return examples


def split_given(given: dict[str, list[dict]], validation_fraction: float, seed: int) -> dict[str, list[dict]]:
    """Use a source's own train/test splits; carve validation from train unless given."""
    splits = dict(given)
    if "validation" not in splits and validation_fraction > 0:
        parts = _allocate(splits["train"], {"validation": validation_fraction}, seed)
        splits["train"], splits["validation"] = parts["train"], parts["validation"]
    return splits


def stratified_subset(examples: list[dict], size: int, seed: int) -> list[dict]:
    """At most ``size`` examples, keeping each label's share."""
    if size >= len(examples):
        return examples
    shares = _allocate(examples, {"keep": size / len(examples)}, seed)
    return shares["keep"]


def stratified_split(
    examples: list[dict], validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[dict]]:
    """A seeded train/validation/test split that keeps label shares in every split."""
    if not 0 <= validation_fraction < 1 or not 0 < test_fraction < 1:
        raise DataError(
            f"data.validation_fraction={validation_fraction} and data.test_fraction="
            f"{test_fraction} must lie in [0, 1) and (0, 1)"
        )
    if validation_fraction + test_fraction >= 1:
        raise DataError(
            f"data.validation_fraction + data.test_fraction = "
            f"{validation_fraction + test_fraction} leaves no training data"
        )
    fractions = {"test": test_fraction, "validation": validation_fraction}
    splits = _allocate(examples, fractions, seed)
    for name in SPLITS:
        if not splits.get(name) and (name != "validation" or validation_fraction > 0):
            raise DataError(
                f"split {name!r} is empty: {len(examples)} examples are too few for "
                f"data.validation_fraction={validation_fraction}, data.test_fraction={test_fraction}"
            )
    return splits


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
