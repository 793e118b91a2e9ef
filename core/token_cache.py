"""Tokenised splits cached on disk and reused across runs.

The key is the SHA-256 of the task's identity (model part, tokenizer contents, maximum
length) and of the examples themselves, so any change in data, tokenizer or length is
a different entry and a stale entry can never be read. An entry is one ``.npz`` of
flat integer arrays plus offsets (no pickles), written atomically; an unreadable
entry is rebuilt, since a cache holds nothing that cannot be recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tunewright.contracts import Example, Feature, Task

VERSION = 1


def cache_key(task: Task, examples: list[Example]) -> str:
    """The entry's name: the task's identity and, of each example, exactly the fields the
    task reads (``task.example_fields``), so a field it reads can never be stale."""
    identity = {"version": VERSION, "task": task.cache_identity(), "fields": task.example_fields}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode())
    for example in examples:
        fields = {name: example[name] for name in task.example_fields if name in example}
        digest.update(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()


def encode_cached(task: Task, examples: list[Example], cache_dir: str | Path | None) -> list[Feature]:
    """``task.encode(examples)``, from ``cache_dir`` when an entry exists (a task whose
    ``cache_identity()`` is ``None`` is not cached). No examples make no features: a
    split can be empty (a validation fraction too small for any label's share), and a
    task's ``encode`` need not handle that."""
    if not examples:
        return []
    if cache_dir is None or task.cache_identity() is None:
        return task.encode(examples)
    path = Path(cache_dir).expanduser() / "tokens" / f"{cache_key(task, examples)}.npz"
    if path.is_file():
        try:
            return _load(path)
        except (OSError, ValueError, KeyError) as error:
            print(f"tunewright: rebuilding unreadable token cache entry {path} ({error})", file=sys.stderr)
    features = task.encode(examples)
    _store(path, features)
    return features


def _store(path: Path, features: list[dict[str, Any]]) -> None:
    arrays: dict[str, np.ndarray] = {"count": np.asarray([len(features)])}
    for key in features[0]:
        values = [feature[key] for feature in features]
        if isinstance(values[0], list):
            arrays[f"{key}.values"] = np.concatenate([np.asarray(v, dtype=np.int64) for v in values])
            arrays[f"{key}.offsets"] = np.cumsum([0] + [len(v) for v in values])
        else:
            arrays[f"{key}.scalar"] = np.asarray(values, dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(path: Path) -> list[dict[str, Any]]:
    with np.load(path, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    features: list[dict[str, Any]] = [{} for _ in range(int(arrays.pop("count")[0]))]
    for name in sorted(arrays):
        key, kind = name.rsplit(".", 1)
        if kind == "scalar":
            for feature, value in zip(features, arrays[name].tolist(), strict=True):
                feature[key] = value
        elif kind == "values":
            values, offsets = arrays[name], arrays[f"{key}.offsets"]
            if len(offsets) != len(features) + 1:
                raise ValueError(f"{key}: {len(offsets) - 1} rows, expected {len(features)}")
            for i, feature in enumerate(features):
                feature[key] = values[offsets[i] : offsets[i + 1]].tolist()
    return features
