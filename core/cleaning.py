"""The cleaning pipeline every dataset goes through, and the data card that records it.

Steps, in order, per split: Unicode normalisation and whitespace cleanup; empty rows
dropped; over-long rows truncated or dropped; exact or near duplicates (same text after
case-folding and dropping punctuation; for images, the same file contents) removed;
then evaluation examples that also appear in an earlier split removed (leakage:
validation against train, test against train and validation). Every decision is counted with its reason, and the card adds
label distributions, length statistics and sensitive-feature coverage per split.
Its headings follow Datasheets for Datasets (Gebru et al., 2021).
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tunewright.contracts import MEDIA_FIELDS, TEXT_FIELDS
from tunewright.data import SPLITS, DomainData, media_sha256
from tunewright.errors import ConfigError
from tunewright.markdown import md_code, md_text

_SPACE = re.compile(r"\s+")
_NOT_WORD = re.compile(r"[\W_]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MARKDOWN_DROPS = 50  # of them, in data_card.md
MAX_LISTED_DROPS = 10000  # dropped rows listed one by one in data_card.json; the total is always given


@dataclass
class CleaningReport:
    """What the pipeline did: one entry per (split, step) that changed something, and
    one per dropped row (split, step, source file, row, reason)."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_load_notes(cls, notes: list[dict[str, Any]]) -> CleaningReport:
        """Start from what the loader did (labels rewritten, rows without labels dropped)."""
        report = cls()
        for note in notes:
            report.steps.append({key: value for key, value in note.items() if key != "dropped"})
            report.dropped.extend(note.get("dropped", []))
        return report

    def record(self, split: str, step: str, rows_in: int, rows_out: int, reason: str, changed: int = 0) -> None:
        if rows_in != rows_out or changed:
            entry = {"split": split, "step": step, "rows_in": rows_in, "rows_out": rows_out, "reason": reason}
            if changed:
                entry["rows_changed"] = changed
            self.steps.append(entry)

    def drop(self, split: str, step: str, example: dict[str, Any], reason: str) -> None:
        where = example.get("origin") or {"source": None, "row": None}
        self.dropped.append({"split": split, "step": step, **where, "reason": reason})


def normalise(text: str, form: str, collapse_whitespace: bool) -> str:
    text = _CONTROL.sub("", text)  # NUL and other control characters carry no meaning in text
    if form != "none":
        text = unicodedata.normalize(form, text)
    if collapse_whitespace:
        text = _SPACE.sub(" ", text).strip()  # \s covers U+0085 and other odd breaks
    return text


def duplicate_key(example: dict[str, Any], mode: str) -> tuple:
    for field_name in MEDIA_FIELDS:  # the same picture or recording under another name is still a duplicate
        if field_name in example:
            return (field_name, media_sha256(example[field_name]))
    texts = tuple(example.get(name) or "" for name in TEXT_FIELDS)
    if mode == "near":
        return tuple(_NOT_WORD.sub(" ", text.casefold()).strip() for text in texts)
    return texts


def clean(data: DomainData, cfg) -> tuple[DomainData, CleaningReport]:
    """Apply the ``data.cleaning`` policy to every split; returns the cleaned data and report."""
    _check_policy(cfg)
    report = CleaningReport.from_load_notes(data.load_notes)
    splits = {}
    for split, examples in data.splits.items():
        examples = _normalise_split(split, examples, cfg, report)
        examples = _drop_empty(split, examples, report)
        examples = _limit_length(split, examples, cfg, report)
        if cfg.deduplicate != "none":
            examples = _deduplicate(split, examples, cfg.deduplicate, report)
        splits[split] = examples
    if cfg.remove_leakage and cfg.deduplicate != "none":
        _remove_leakage(splits, cfg.deduplicate, report)
    return DomainData(splits, data.label_names, data.sources, data.load_notes), report


def _check_policy(cfg) -> None:
    allowed = {
        "unicode_form": ("NFC", "NFKC", "none"),
        "over_long": ("truncate", "drop"),
        "deduplicate": ("near", "exact", "none"),
    }
    for key, choices in allowed.items():
        if getattr(cfg, key) not in choices:
            raise ConfigError(f"data.cleaning.{key}: {getattr(cfg, key)!r} is not one of {', '.join(choices)}")


def _normalise_split(split, examples, cfg, report):
    changed, out = 0, []
    for example in examples:
        cleaned = dict(example)
        for name in TEXT_FIELDS:
            if cleaned.get(name) is not None:
                cleaned[name] = normalise(cleaned[name], cfg.unicode_form, cfg.collapse_whitespace)
        changed += cleaned != example
        out.append(cleaned)
    report.record(
        split, "normalise", len(examples), len(out), "Unicode normalisation, whitespace and control characters", changed
    )
    return out


def _drop_empty(split, examples, report):
    out = []
    for example in examples:
        if "text" not in example or example["text"].strip():
            out.append(example)
        else:
            report.drop(split, "drop_empty", example, "empty text")
    report.record(split, "drop_empty", len(examples), len(out), "empty text")
    return out


def _limit_length(split, examples, cfg, report):
    def too_long(example):
        return len(example.get("text", "")) > cfg.max_chars

    long = [e for e in examples if too_long(e)]
    if cfg.over_long == "drop":
        out = [e for e in examples if not too_long(e)]
        for example in long:
            report.drop(split, "over_long", example, f"{len(example['text'])} characters, over {cfg.max_chars}")
        report.record(split, "over_long", len(examples), len(out), f"longer than {cfg.max_chars} characters")
        return out
    out = [{**e, "text": e["text"][: cfg.max_chars]} if too_long(e) else e for e in examples]
    report.record(split, "over_long", len(examples), len(out), f"truncated to {cfg.max_chars} characters", len(long))
    return out


def _deduplicate(split, examples, mode, report):
    seen, out = {}, []
    for example in examples:
        key = duplicate_key(example, mode)
        if key not in seen:
            seen[key] = example
            out.append(example)
        else:
            report.drop(split, "deduplicate", example, f"{mode} duplicate of {_where(seen[key])}")
    report.record(split, "deduplicate", len(examples), len(out), f"{mode} duplicate within the split")
    return out


def _remove_leakage(splits, mode, report):
    earlier: dict = {}
    for split in SPLITS:
        if split not in splits:
            continue
        if split != "train":
            kept = []
            for example in splits[split]:
                twin = earlier.get(duplicate_key(example, mode))
                if twin is None:
                    kept.append(example)
                else:
                    report.drop(split, "leakage", example, f"{mode} duplicate of {twin[0]} {_where(twin[1])}")
            report.record(split, "leakage", len(splits[split]), len(kept), f"{mode} duplicate of an earlier split")
            splits[split] = kept
        for example in splits[split]:
            earlier.setdefault(duplicate_key(example, mode), (split, example))


def _where(example: dict[str, Any]) -> str:
    """An example's place for a reader: ``row 12 of reviews.csv``."""
    where = example.get("origin")
    return f"row {where['row']} of {where['source']}" if where else "an earlier row"


def _length_stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "min": min(values),
        "mean": round(statistics.fmean(values), 1),
        "median": statistics.median(values),
        "max": max(values),
    }


def data_card(dataset: str, data: DomainData, report: CleaningReport, sensitive_columns: list[str]) -> dict[str, Any]:
    """The JSON data card: sources, cleaning steps, and per-split composition."""
    composition = {}
    for split, examples in data.splits.items():
        counts = Counter(
            data.label_names[label]
            for e in examples  # per-word tags count one by one
            for label in e.get("tags") or ([e["label"]] if e.get("label") is not None else [])
        )
        composition[split] = {
            "rows": len(examples),
            "labels": {name: counts.get(name, 0) for name in data.label_names},
            "length_chars": _length_stats([len(e["text"]) for e in examples if "text" in e]),
            "length_words": _length_stats([len(e["text"].split()) for e in examples if "text" in e]),
            "seconds": _length_stats([e["seconds"] for e in examples if "seconds" in e]),  # recordings' durations
        }
        present = [counts[name] for name in data.label_names if counts.get(name)]
        composition[split]["class_balance"] = round(min(present) / max(present), 4) if present else None
    coverage = {
        column: {
            split: round(
                sum(1 for e in ex if (e.get("sensitive") or {}).get(column) not in (None, "")) / max(len(ex), 1), 4
            )
            for split, ex in data.splits.items()
        }
        for column in sensitive_columns
    }
    return {
        "dataset": dataset,
        "sources": data.sources,
        "label_names": data.label_names,
        "cleaning": report.steps,
        "dropped_rows": report.dropped[:MAX_LISTED_DROPS],
        "dropped_rows_total": len(report.dropped),
        "composition": composition,
        "sensitive_features": coverage,
    }


def data_card_markdown(card: dict[str, Any]) -> str:
    """The data card as short markdown for reviewers."""
    out = [f"# Data card: {md_text(card['dataset'])}", "", "## Sources", ""]
    out += [f"- {md_code(s['path'])} (sha256 {md_code(s['sha256'][:16] + '…')})" for s in card["sources"]] or [
        "- (none recorded)"
    ]
    out += ["", "## Composition", "", "| split | rows | class balance (min/max) | mean words |", "|---|---:|---:|---:|"]
    for split, c in card["composition"].items():
        out.append(f"| {md_text(split)} | {c['rows']} | {c['class_balance']} | {c['length_words'].get('mean', '')} |")
    if any(c.get("seconds") for c in card["composition"].values()):
        out += ["", "## Durations (seconds)", "", "| split | min | mean | median | max |", "|---|---:|---:|---:|---:|"]
        for split, c in card["composition"].items():
            if not (s := c.get("seconds")):
                continue
            out.append(f"| {md_text(split)} | {s['min']} | {s['mean']} | {s['median']} | {s['max']} |")
    out += ["", "## Labels per split", "", "| label | " + " | ".join(map(md_text, card["composition"])) + " |"]
    out.append("|---|" + "---:|" * len(card["composition"]))
    for name in card["label_names"]:
        out.append(
            f"| {md_text(name)} | " + " | ".join(str(c["labels"][name]) for c in card["composition"].values()) + " |"
        )
    out += ["", "## Preprocessing and cleaning", ""]
    out += [
        f"- {s['split']}: {s['step']}: {s['rows_in']} → {s['rows_out']} rows"
        + (f", {s['rows_changed']} changed" if s.get("rows_changed") else "")
        + f" ({md_text(s['reason'])})"
        for s in card["cleaning"]
    ] or ["- nothing was changed or dropped"]
    dropped = card.get("dropped_rows", [])
    if dropped:
        out += ["", f"## Dropped rows ({card['dropped_rows_total']})", ""]
        out += [
            f"- {md_text(d['split'])}: {md_code(d['source'])} row {md_text(d['row'])}: {md_text(d['reason'])}"
            for d in dropped[:MARKDOWN_DROPS]
        ]
        if card["dropped_rows_total"] > MARKDOWN_DROPS:
            out.append(f"- ... {card['dropped_rows_total'] - MARKDOWN_DROPS} more in data_card.json")
    out += ["", "## Sensitive features", ""]
    out += [
        f"- {md_code(column)}: present in " + ", ".join(f"{share:.0%} of {split}" for split, share in shares.items())
        for column, shares in card["sensitive_features"].items()
    ] or ["- none declared (the bias audit's group metrics need them)"]
    return "\n".join(out) + "\n"
