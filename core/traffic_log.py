"""What ``tunewright serve`` served, kept in the run folder for drift monitoring.

Each served input is one JSON line in ``<run>/served/<replica>-<n>.jsonl``: its request
id, time, run id, the input (a text; an image by its SHA-256), the prediction and its
probabilities. Feedback labels go to ``<run>/served/feedback-<replica>.jsonl``. One
writer per process appends whole lines and flushes each, so a crash can tear at most
the last line of a shard; :func:`read_traffic` skips such a line with a warning and
never reads it as data. Shards rotate at ``serve.log.shard_mb``; replicas behind a load
balancer write their own shards (``serve.log.replica``) and a reader takes them all.
"""

from __future__ import annotations

import json
import random
import re
import sys
import threading
from pathlib import Path
from typing import Any

from tunewright.contracts import MEDIA_FIELDS, TEXT_FIELDS
from tunewright.errors import DataError

SERVED_DIR = "served"
FEEDBACK_PREFIX = "feedback-"
# What ``serve.log.redact`` masks before a line is written.
REDACTIONS = (
    (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), "[email]"),
    (re.compile(r"\b(?:\d[ -]?){13,19}\b"), "[card]"),
    (re.compile(r"(?<!\w)\+?\d[\d ()-]{7,}\d\b"), "[phone]"),
)


def redact(text: str) -> str:
    """``text`` with e-mail addresses, card numbers and phone numbers masked."""
    for pattern, mask in REDACTIONS:
        text = pattern.sub(mask, text)
    return text


class TrafficLog:
    """Appends served records to rotating shards; thread-safe, one complete line per write."""

    def __init__(self, folder: Path, replica: str, shard_bytes: int, sample: float, redacting: bool):
        self.folder = folder
        self.replica = replica
        self.shard_bytes = shard_bytes
        self.sample = sample
        self.redacting = redacting
        self._lock = threading.Lock()
        self._random = random.Random()
        self._handle = None
        self._index = self._last_index()
        folder.mkdir(parents=True, exist_ok=True)

    def _last_index(self) -> int:
        shards = sorted(self.folder.glob(f"{self.replica}-*.jsonl")) if self.folder.is_dir() else []
        return int(shards[-1].stem.rsplit("-", 1)[1]) if shards else 0

    def _shard(self) -> Path:
        return self.folder / f"{self.replica}-{self._index:05d}.jsonl"

    def write(self, record: dict[str, Any], input_field: str) -> bool:
        """Append ``record`` (sampled at ``serve.log.sample``); returns whether it was written."""
        if self.sample < 1.0 and self._random.random() >= self.sample:
            return False
        if self.redacting:
            texts = {name for name in (input_field, *TEXT_FIELDS) if isinstance(record.get(name), str)} - set(
                MEDIA_FIELDS
            )
            record = {**record, **{name: redact(record[name]) for name in texts}}
        self._append(json.dumps(record, ensure_ascii=False) + "\n")
        return True

    def _append(self, line: str) -> None:
        with self._lock:
            if self._handle is None or self._handle.tell() >= self.shard_bytes:
                if self._handle is not None:
                    self._handle.close()
                    self._index += 1
                self._handle = self._shard().open("a", encoding="utf-8")
            self._handle.write(line)
            self._handle.flush()

    def feedback(self, request_id: str, label: str, time: str) -> None:
        """Record a true label for a served request."""
        path = self.folder / f"{FEEDBACK_PREFIX}{self.replica}.jsonl"
        line = json.dumps({"request_id": request_id, "label": label, "time": time}) + "\n"
        with self._lock, path.open("a", encoding="utf-8") as handle:
            handle.write(line)

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The records of one shard. A torn last line (a crash mid-write) is skipped with a
    warning; a bad line before it is an error naming the file and line."""
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) and not text.endswith("\n"):
                print(f"tunewright: {path}:{number}: skipping a torn last line (a write cut short)", file=sys.stderr)
                continue
            raise DataError(f"{path}:{number}: not a JSON line; was the file edited? Remove the line") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: not a JSON object")
        records.append(record)
    return records


def read_traffic(folder: Path) -> tuple[list[dict[str, Any]], dict[str, str], list[Path]]:
    """Every replica's served records in shard order, the feedback labels by request id
    (the latest wins), and the files read."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no served traffic here (tunewright serve writes <run>/served/)")
    shards = sorted(p for p in folder.glob("*.jsonl") if not p.name.startswith(FEEDBACK_PREFIX))
    feedback_files = sorted(folder.glob(f"{FEEDBACK_PREFIX}*.jsonl"))
    records = [record for shard in shards for record in read_lines(shard)]
    labels = {}
    for path in feedback_files:
        for record in sorted(read_lines(path), key=lambda r: str(r.get("time", ""))):
            labels[str(record["request_id"])] = str(record["label"])
    return records, labels, shards + feedback_files
