"""``data=csv``, ``data=jsonl`` and ``data=parquet``: your own labelled text files, or
files of image or audio paths (``data.image_column``, ``data.audio_column``).

One file split automatically (``data.path``), or your own splits
(``data.train_path``, ``data.validation_path``, ``data.test_path``); missing
evaluation splits are carved from train, stratified and seeded. Columns are mapped by
config; sensitive-feature columns are carried along for the bias audit and never
reach the model.

    tunewright train data=csv data.path=tickets.csv data.text_column=body data.label_column=queue

Structured records (transactions, patient records) reach a text model through
``data.text_columns``: each row's columns rendered as ``name: value`` in the order
given, joined by ``"; "`` (``amount: 12.50; merchant: ACME; country: FR``), or through
``data.text_template`` (``"{merchant} charged {amount} in {country}"``).
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tunewright import hookimpl
from tunewright.audio import check_audio
from tunewright.contracts import DataSource
from tunewright.data import (
    DomainData,
    file_sha256,
    label_mapping,
    label_set,
    labelled_examples,
    media_source,
    origin,
    split_given,
)
from tunewright.errors import ConfigError, DataError
from tunewright.images import check_image
from tunewright.readers import read_csv, read_jsonl, read_parquet, require_columns
from tunewright.schema import DataConfig


@dataclass
class FileDataConfig(DataConfig):
    path: Optional[str] = None  # one file, split into train/validation/test
    train_path: Optional[str] = None  # or your own splits
    validation_path: Optional[str] = None
    test_path: Optional[str] = None
    text_column: str = "text"
    text_columns: list[str] = field(default_factory=list)  # records: these columns as "name: value; ..."
    text_template: Optional[str] = None  # records: "{merchant} charged {amount}", columns by name
    image_column: Optional[str] = None  # image file paths (relative to the data file) instead of text
    audio_column: Optional[str] = None  # audio file paths (relative to the data file) instead of text
    words_column: Optional[str] = None  # token classification: a list of words per row (JSON lines, Parquet)
    tags_column: Optional[str] = None  # ... and a list of tags (B-PER, I-PER, O, ...), one per word
    text_pair_column: Optional[str] = None  # a second text, for pair classification
    label_column: Optional[str] = "label"  # null: unlabelled rows (tunewright monitor, or a response_column)
    response_column: Optional[str] = None  # the answer a causal language model learns (model=causal_lm)
    messages_column: Optional[str] = None  # chat data: a list of {role, content} ending with the assistant's answer
    labels: Optional[list[str]] = None  # the label set, in id order; default: sorted labels of train
    encoding: str = "utf-8"
    delimiter: str = ","  # csv only; tab (or \t) for tab-separated files


# Settings whose columns must hold text (the others hold lists, paths or labels).
TEXT_COLUMNS = ("text_column", "text_pair_column", "response_column")
# Settings that each make a row's input (instead of data.text_column): at most one applies.
INPUT_SETTINGS = ("image_column", "audio_column", "words_column", "messages_column", "text_columns", "text_template")


def input_setting(cfg: FileDataConfig) -> str:
    """The one setting a row's input is read through (``text_column`` when no other is
    given); two given at once are refused, since only one of them could be read, except
    an image with the conversation about it (:func:`question_setting`)."""
    given = [key for key in INPUT_SETTINGS if getattr(cfg, key) and not (key == "messages_column" and cfg.image_column)]
    if len(given) > 1:
        raise ConfigError(
            f"data.{given[0]} and data.{given[1]}: a row has one input; give one of them "
            "(data.text_columns renders columns as 'name: value', data.text_template fills a template)"
        )
    return given[0] if given else "text_column"


def question_setting(cfg: FileDataConfig) -> str | None:
    """Where an image's question comes from, for a vision-language model: the
    conversation (``data.messages_column``), or ``data.text_column`` when the row also
    has an answer (``data.response_column``); ``None`` for an image alone."""
    if not cfg.image_column:
        return None
    if cfg.messages_column:
        return "messages_column"
    return "text_column" if cfg.response_column else None


class RecordText:
    """How a structured record becomes the model's text: ``data.text_columns`` rendered
    ``name: value`` in their order, or ``data.text_template`` filled by column name. A
    missing value renders empty, as an empty CSV cell does. Sensitive columns and the
    label never enter the text: they would teach the model the group, or the answer."""

    SEPARATOR = "; "

    def __init__(self, cfg: FileDataConfig):
        self.template = cfg.text_template
        self.columns = list(cfg.text_columns) if cfg.text_columns else self._template_columns(cfg.text_template)
        setting = "data.text_columns" if cfg.text_columns else "data.text_template"
        for column in self.columns:
            if column in cfg.sensitive_columns:
                raise ConfigError(
                    f"{setting}: {column!r} is in data.sensitive_columns, which stay out of the model's input "
                    "(the audit reads them); leave it out of the text"
                )
            if column == cfg.label_column:
                raise ConfigError(f"{setting}: {column!r} is the label column; the text must not hold the answer")

    @staticmethod
    def _template_columns(template: Optional[str]) -> list[str]:
        if template is None:
            return []
        columns = []
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as error:
            raise ConfigError(f"data.text_template: {error}; columns are written {{name}}, braces doubled") from None
        for _, name, _, _ in parsed:
            if name is None:
                continue
            if not name or not name.isidentifier():
                raise ConfigError(
                    f"data.text_template: {{{name}}} is not a column name; write {{column}} "
                    "(no positions, attributes or indexing)"
                )
            if name not in columns:
                columns.append(name)
        if not columns:
            raise ConfigError("data.text_template: names no column; write {column} where a value goes")
        return columns

    def render(self, path: Path, row: int, fields: dict[str, Any]) -> str:
        values = {column: "" if fields.get(column) is None else fields[column] for column in self.columns}
        if self.template is None:
            return self.SEPARATOR.join(f"{column}: {value}" for column, value in values.items())
        try:
            return self.template.format_map(values)
        except (ValueError, TypeError) as error:  # a format spec that does not fit the value: {amount:.2f} on text
            raise DataError(f"{path}, row {row}: data.text_template does not fit this row ({error})") from None


class LabelledFiles(DataSource):
    """Reads the configured files with ``read`` (CSV or JSON lines)."""

    def __init__(self, cfg: FileDataConfig, read):
        self.cfg = cfg
        self.read = read
        self.input_key = input_setting(cfg)
        self.records = RecordText(cfg)

    def files(self) -> dict[str, Path]:
        cfg = self.cfg
        split_paths = {"train": cfg.train_path, "validation": cfg.validation_path, "test": cfg.test_path}
        if cfg.path and cfg.train_path:
            raise ConfigError("data.path and data.train_path: give one file to split, or your own splits, not both")
        if cfg.path:
            return {"train": Path(cfg.path)}
        if not cfg.train_path:
            raise ConfigError("data.path: give a file (data.path=...) or your splits (data.train_path=...)")
        return {split: Path(path) for split, path in split_paths.items() if path}

    def load(self) -> DomainData:
        cfg = self.cfg
        records = {split: self._read(path) for split, path in self.files().items()}
        if cfg.tags_column:
            return self._tagged(records)
        if cfg.label_column is None:
            given = {
                split: [
                    {**self._example(path, row, fields), "label": None, "origin": origin(path, row)}
                    for row, fields in rows
                ]
                for split, (path, rows) in records.items()
            }
            return DomainData(split_given(given, cfg), list(cfg.labels or []), self._sources(records, given))
        train_path, train_rows = records["train"]
        label_names = (
            list(cfg.labels)
            if cfg.labels
            else label_set(
                train_path,
                ((row, fields[cfg.label_column]) for row, fields in train_rows),
                label_mapping(cfg.label_map),
            )
        )
        given, notes = {}, []
        for split, (path, rows) in records.items():
            labelled = ((row, self._example(path, row, fields), fields[cfg.label_column]) for row, fields in rows)
            given[split] = labelled_examples(
                path, labelled, label_names, cfg.cleaning.unknown_labels, notes, split, cfg.label_map
            )
        return DomainData(split_given(given, cfg), label_names, self._sources(records, given), notes)

    def _tagged(self, records: dict[str, tuple[Path, list]]) -> DomainData:
        """Rows of words with one tag each (token classification); the tag set is
        ``data.labels`` or every tag of the training split, sorted."""
        cfg = self.cfg
        names = (
            list(cfg.labels)
            if cfg.labels
            else sorted({str(t) for _, r in records["train"][1] for t in r[cfg.tags_column]})
        )
        index = {name: i for i, name in enumerate(names)}
        given, notes = {}, []
        for split, (path, rows) in records.items():
            examples = []
            for row, fields in rows:
                unknown = [str(t) for t in fields[cfg.tags_column] if str(t) not in index]
                if unknown and cfg.cleaning.unknown_labels != "drop":
                    raise DataError(
                        f"{path}, row {row}: unknown tag {unknown[0]!r}; tags: {', '.join(names)} "
                        "(data.cleaning.unknown_labels=drop skips such rows)"
                    )
                if not unknown:
                    tags = [index[str(t)] for t in fields[cfg.tags_column]]
                    examples.append(
                        {**self._example(path, row, fields), "tags": tags, "label": None, "origin": origin(path, row)}
                    )
            if len(examples) < len(rows):
                notes.append(
                    {
                        "split": split,
                        "step": "unknown_labels",
                        "rows_in": len(rows),
                        "rows_out": len(examples),
                        "reason": "tags outside the tag set",
                    }
                )
            given[split] = examples
        return DomainData(split_given(given, cfg), names, self._sources(records, given), notes)

    def _sources(self, records: dict[str, tuple[Path, list]], given: dict[str, list[dict]]) -> list[dict[str, str]]:
        sources = [{"path": str(path), "sha256": file_sha256(path)} for path, _ in records.values()]
        for media, noun in (("image", "images"), ("audio", "audio files")):
            if getattr(self.cfg, f"{media}_column"):
                paths = [example[media] for examples in given.values() for example in examples]
                sources.append(media_source(Path(os.path.commonpath(paths)), paths, noun))
        return sources

    def _example(self, path: Path, row: int, fields: dict[str, Any]) -> dict[str, Any]:
        """The configured columns of one row, under the names tasks and audits read."""
        cfg = self.cfg
        if cfg.image_column:  # a path relative to the data file's folder
            example = {"image": str((path.parent / str(fields[cfg.image_column])).resolve())}
            if cfg.messages_column:
                example.update(conversation(fields[cfg.messages_column]))
            elif cfg.response_column:  # the question about the image; the answer is added below
                example["text"] = str(fields[cfg.text_column])
        elif cfg.audio_column:  # checked here, where its duration is kept
            audio = path.parent / str(fields[cfg.audio_column])
            seconds = check_audio(audio, f"{path}, row {row}").seconds
            example = {"audio": str(audio.resolve()), "seconds": round(seconds, 3)}
        elif cfg.words_column:  # the words as given; the text (for cleaning and reports) joins them
            words = [str(word) for word in fields[cfg.words_column]]
            example = {"words": words, "text": " ".join(words)}
        elif cfg.messages_column:
            example = conversation(fields[cfg.messages_column])
        elif self.records.columns:
            example = {"text": self.records.render(path, row, fields)}
        else:
            example = {"text": str(fields[cfg.text_column])}
        if cfg.text_pair_column:
            example["text_pair"] = str(fields[cfg.text_pair_column])
        if cfg.response_column:
            example["response"] = str(fields[cfg.response_column])
        if cfg.sensitive_columns:
            example["sensitive"] = {column: fields[column] for column in cfg.sensitive_columns}
        return example

    def _read(self, path: Path) -> tuple[Path, list]:
        columns, rows = self.read(path)
        input_key = self.input_key
        record = {}  # a structured record's columns: they must exist, and may hold no value
        if input_key in ("text_columns", "text_template"):
            record = {
                f"text_columns[{i}]" if self.cfg.text_columns else f"text_template {{{column}}}": column
                for i, column in enumerate(self.records.columns)
            }
            wanted = {}
        else:
            wanted = {input_key: getattr(self.cfg, input_key)}
        question = question_setting(self.cfg)
        if question:
            wanted[question] = getattr(self.cfg, question)
        if self.cfg.label_column is not None and not self.cfg.tags_column:
            wanted["label_column"] = self.cfg.label_column
        for key in ("text_pair_column", "response_column", "tags_column"):
            if getattr(self.cfg, key):
                wanted[key] = getattr(self.cfg, key)
        wanted.update({f"sensitive_columns[{i}]": c for i, c in enumerate(self.cfg.sensitive_columns)})
        require_columns(path, columns, {**record, **wanted})
        texts = [getattr(self.cfg, key) for key in TEXT_COLUMNS if getattr(self.cfg, key) and key in wanted]
        for row, fields in rows:
            missing = [c for key, c in wanted.items() if key != "label_column" and fields.get(c) is None]
            if missing:
                raise DataError(f"{path}, row {row}: no value in column {missing[0]!r}")
            for column in texts:
                if not isinstance(fields[column], str):
                    value = fields[column]
                    raise DataError(
                        f"{path}, row {row}, column {column!r}: expected text, got {type(value).__name__} "
                        f"{str(value)[:40]!r}; point the column setting at a column of text"
                    )
            if self.cfg.messages_column:
                check_messages(path, row, fields[self.cfg.messages_column])
            if self.cfg.image_column:
                check_image(path.parent / str(fields[self.cfg.image_column]), f"{path}, row {row}")
            if self.cfg.words_column:
                check_tagged_words(
                    path,
                    row,
                    fields[self.cfg.words_column],
                    fields.get(self.cfg.tags_column or ""),
                    self.cfg.tags_column,
                )
        return path, rows


def conversation(messages: list[dict[str, str]]) -> dict[str, Any]:
    """A chat example: the conversation so far is the text, the last answer the response."""
    return {
        "messages": messages,
        "response": messages[-1]["content"],
        "text": "\n".join(f"{m['role']}: {m['content']}" for m in messages[:-1]),
    }


def check_messages(path: Path, row: int, messages: Any) -> None:
    """A chat example: a list of ``{"role", "content"}`` whose last turn is the assistant's."""
    if (
        not isinstance(messages, list)
        or not messages
        or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages
        )
    ):
        raise DataError(f"{path}, row {row}: messages must be a list of {{role, content}} objects")
    if messages[-1]["role"] != "assistant" or len(messages) < 2:
        raise DataError(f"{path}, row {row}: the last message must be the assistant's answer, after at least one other")


def check_tagged_words(path: Path, row: int, words: Any, tags: Any, tags_column: str | None) -> None:
    """A token-classification row: a non-empty list of words and, when tags are read, a
    list of as many tags."""
    if not isinstance(words, list) or not words or not all(isinstance(w, (str, int, float)) for w in words):
        raise DataError(f"{path}, row {row}: the words must be a non-empty list (JSON lines or Parquet can hold one)")
    if tags_column and (not isinstance(tags, list) or len(tags) != len(words)):
        count = len(tags) if isinstance(tags, list) else "no list of"
        raise DataError(f"{path}, row {row}: {len(words)} words but {count} tags in column {tags_column!r}")


def delimiter_character(value: str) -> str:
    """``data.delimiter`` as one character: ``\\t`` (as a shell passes it) and ``tab`` mean a tab."""
    character = {"\\t": "\t", "tab": "\t"}.get(value, value)
    if len(character) != 1:
        raise ConfigError(
            f"data.delimiter={value!r}: give one character, such as ',' or ';', or tab (also written \\t)"
        )
    return character


def _csv(cfg: FileDataConfig) -> LabelledFiles:
    delimiter = delimiter_character(cfg.delimiter)
    return LabelledFiles(cfg, lambda path: read_csv(path, cfg.encoding, delimiter))


def _jsonl(cfg: FileDataConfig) -> LabelledFiles:
    return LabelledFiles(cfg, lambda path: read_jsonl(path, cfg.encoding))


def _parquet(cfg: FileDataConfig) -> LabelledFiles:
    return LabelledFiles(cfg, read_parquet)


@hookimpl
def tunewright_register_datasets(registry):
    registry.add(
        "csv", _csv, schema=FileDataConfig, description="your labelled CSV (or TSV) files, columns mapped by config"
    )
    registry.add(
        "jsonl", _jsonl, schema=FileDataConfig, description="your labelled JSON-lines files, keys mapped by config"
    )
    registry.add(
        "parquet", _parquet, schema=FileDataConfig, description="your labelled Parquet files, columns mapped by config"
    )
