"""What the studio shows about data before anything trains: a preview, the columns to map,
and the data card the run would write (label balance, duplicates, leakage across splits,
rows dropped and why), computed by the same dataset plugin and cleaning as the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewright.errors import TunewrightError, first_line

PREVIEW_ROWS = 8
FILE_KINDS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}


@dataclass
class Preview:
    """The first rows of an uploaded file and its columns (an image folder: its labels)."""

    kind: str  # the data option that reads it: csv, jsonl, parquet or image_folder
    columns: list[str]
    rows: list[list[Any]]
    total_rows: int


def data_kind(path: Path) -> str:
    """The ``data=`` option that reads ``path``."""
    return "image_folder" if path.is_dir() else FILE_KINDS[path.suffix.lower()]


def preview(path: Path) -> Preview:
    """The file's columns and first rows; a malformed file raises the reader's one-line
    error naming the file and row, as ``tunewright train`` would."""
    from tunewright import readers

    kind = data_kind(path)
    if kind == "image_folder":
        labels = sorted(p.name for p in path.iterdir() if p.is_dir())
        counts = [[label, sum(1 for f in (path / label).iterdir() if f.is_file())] for label in labels]
        return Preview(kind, ["label", "images"], counts, sum(n for _, n in counts))
    read = {"csv": readers.read_csv, "jsonl": readers.read_jsonl, "parquet": readers.read_parquet}[kind]
    columns, rows = read(path)
    shown = [[_cell(fields.get(column)) for column in columns] for _, fields in rows[:PREVIEW_ROWS]]
    return Preview(kind, list(columns), shown, len(rows))


def _cell(value: Any) -> Any:
    text = value if isinstance(value, str | int | float) or value is None else str(value)
    return text[:200] + "…" if isinstance(text, str) and len(text) > 200 else text


def guess_column(columns: list[str], *names: str) -> str | None:
    """The first column whose name is one of ``names`` (case-insensitive), else ``None``."""
    lowered = {column.lower(): column for column in columns}
    return next((lowered[name] for name in names if name in lowered), None)


def data_card(overrides: list[str], plugins) -> tuple[dict[str, Any], str]:
    """The data card (JSON and markdown) the run composed from ``overrides`` would write,
    without loading any model. Config and data errors propagate as tunewright's one-line
    errors."""
    from tunewright.cleaning import clean, data_card_markdown
    from tunewright.cleaning import data_card as card_of
    from tunewright.config import compose_config, validate

    cfg = compose_config(overrides, plugins)
    validate(cfg, plugins)
    data, report = clean(plugins.registries["datasets"].build(cfg.data).load(), cfg.data.cleaning)
    card = card_of(cfg.data.kind, data, report, list(cfg.data.sensitive_columns))
    return card, data_card_markdown(card)


def explain_failure(error: Exception) -> str:
    """One line for what went wrong, as the CLI prints it."""
    if isinstance(error, TunewrightError | OSError):
        return first_line(error)
    return f"internal error: {type(error).__name__}: {first_line(error)}"
