"""Reading data files so that every bad input fails with file, row and column named.

A missing or empty file, the wrong encoding, a ragged CSV row, malformed JSON, a
missing column (with the closest existing name suggested) and an unknown label each
raise a :class:`~tunewright.errors.DataError` before any training starts.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunewright.errors import DataError

# One field may hold a long document (the default limit is 128 KiB); cleaning truncates
# or drops over-long texts afterwards (data.cleaning.max_chars).
csv.field_size_limit(min(sys.maxsize, 1 << 26))

Row = tuple[int, dict[str, Any]]  # (row number in the file, counting a header as row 1; fields)


def read_text(path: Path | str, encoding: str = "utf-8") -> str:
    """The whole file decoded (for small files); missing, empty and undecodable files are errors."""
    path = _existing(path)
    return "".join(_decoded_lines(path, encoding))


def _existing(path: Path | str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            if chunk.strip():
                return path
    raise DataError(f"{path}: the file is empty")


def _decoded_lines(path: Path, encoding: str) -> Iterator[str]:
    """The file's lines (endings kept), decoded one at a time: large files are never
    held whole, and a byte the encoding cannot decode names its row."""
    try:  # a UTF-8 file may start with a byte-order mark, which is not part of its first column's name
        decoder = codecs.getincrementaldecoder("utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding)()
    except LookupError:
        raise DataError(f"{path}: unknown encoding {encoding!r} (data.encoding)") from None
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield decoder.decode(raw)
            except UnicodeDecodeError as error:
                raise DataError(
                    f"{path}, row {number}: not valid {encoding} (byte {error.object[error.start]:#04x}); "
                    "set data.encoding to the file's encoding, e.g. latin-1 or cp1252"
                ) from None


def lines(text: str) -> list[str]:
    """Split on ``\\n`` only: U+0085 and other Unicode line breaks inside a sentence stay
    where they are (``str.splitlines`` would cut there)."""
    return text.split("\n")


def read_separated_lines(path: Path, separator: str, encoding: str = "utf-8") -> Iterator[tuple[int, str, str]]:
    """``(row, text, label)`` from ``text<separator>label`` lines, split at the last separator.

    No quoting is interpreted: review sentences hold stray quotes a CSV reader would
    swallow whole rows with.
    """
    for row, line in enumerate(lines(read_text(path, encoding)), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        text, found, label = line.rpartition(separator)
        if not found or not label.strip():
            raise DataError(f"{path}, row {row}: expected 'text{separator}label', got {line[:80]!r}")
        yield row, text, label.strip()


def read_csv(path: Path, encoding: str = "utf-8", delimiter: str = ",") -> tuple[list[str], list[Row]]:
    """Header and rows of a CSV, read as a stream; a row with more or fewer fields than
    the header, a quote never closed or an oversized field is an error naming the row
    where the record starts."""
    path = _existing(path)
    reader = csv.reader(_decoded_lines(path, encoding), delimiter=delimiter, strict=True)
    rows, header, start = [], None, 1
    try:
        header = next(reader, None)
        if not header:
            raise DataError(f"{path}: no header row")
        start = reader.line_num + 1
        for fields in reader:
            if fields and len(fields) != len(header):
                spans = (
                    f" (the record runs on to row {reader.line_num}: a quote left open?)"
                    if reader.line_num > start
                    else ""
                )
                raise DataError(
                    f"{path}, row {start}: {len(fields)} fields where the header has {len(header)} "
                    f"({', '.join(header)}){spans}; check quoting and data.delimiter"
                )
            if fields:
                rows.append((start, dict(zip(header, fields))))
            start = reader.line_num + 1
    except csv.Error as error:
        problem = str(error)
        if "field larger than field limit" in problem:
            problem = f"a field longer than {csv.field_size_limit():,} characters"
        elif "unexpected end of data" in problem or "EOF" in problem:
            problem = "a quote opened in this row is never closed"
        elif "expected after" in problem:
            problem = 'a quote opened in this row does not close where its field ends (a quote inside a field is written twice: "")'
        raise DataError(f"{path}, row {start}: {problem}; check quoting and data.delimiter") from None
    if not rows:
        raise DataError(f"{path}: a header but no rows")
    return header, rows


def read_jsonl(path: Path, encoding: str = "utf-8") -> tuple[list[str], list[Row]]:
    """Objects of a JSON-lines file, read as a stream, and the union of their keys."""
    path = _existing(path)
    rows, keys = [], {}
    for row, line in enumerate(_decoded_lines(path, encoding), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, row {row}: not valid JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}, row {row}: expected a JSON object, got {type(record).__name__}")
        keys.update(dict.fromkeys(record))
        rows.append((row, record))
    return list(keys), rows


def read_parquet(path: Path, batch_rows: int = 65536) -> tuple[list[str], list[Row]]:
    """Rows of a Parquet file, read a record batch at a time (row numbers count from 1)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        parquet = pq.ParquetFile(path)
        rows = [record for batch in parquet.iter_batches(batch_size=batch_rows) for record in batch.to_pylist()]
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{path}: not a readable Parquet file ({error})") from None
    if not rows:
        raise DataError(f"{path}: the file has no rows")
    return parquet.schema_arrow.names, list(enumerate(rows, start=1))


def require_columns(path: Path, available: list[str], wanted: dict[str, str]) -> None:
    """Every ``wanted`` column (config key -> column name) exists, or an error suggests
    the closest one."""
    headerless = not set(wanted.values()) & set(map(str, available))
    for key, column in wanted.items():
        if column not in available:
            close = difflib.get_close_matches(column, available, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            if headerless and not close and len(wanted) > 1:
                hint = "; the first row is read as column names: does the file lack a header row?"
            raise DataError(
                f"{path}: no column {column!r} (data.{key}){hint} columns: {', '.join(map(str, available))}"
            )
