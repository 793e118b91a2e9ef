"""What the studio shows of a run, read from its run folder alone (the same files the CLI
writes), so a run started from a terminal looks the same as one started in the browser.

Everything returned as HTML or Markdown has the run's strings escaped: labels, column
names and reasons come from the user's data.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewright.markdown import md_table, md_text
from tunewright.release_gate import release_sentence, verdict_words


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # not written yet, or being replaced this instant
        return None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # the line being appended right now
            break
    return rows


@dataclass
class Progress:
    """A training run as it goes: from ``metrics.jsonl`` and ``results.json``."""

    state: str  # not started, training, finished, stopped, failed
    step: int = 0
    total_steps: int | None = None
    epoch: int | None = None
    tokens_per_second: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)

    def eta_seconds(self, elapsed_s: float) -> float | None:
        """Seconds left at the pace of the steps so far (``elapsed_s`` since they began)."""
        if not self.total_steps or not self.step or self.state != "training":
            return None
        return elapsed_s / self.step * (self.total_steps - self.step)

    def sentence(self, elapsed_s: float | None = None) -> str:
        if self.state == "not started":
            return "Not started."
        parts = [
            f"{self.state.capitalize()}: step {self.step}" + (f" of {self.total_steps}" if self.total_steps else "")
        ]
        if self.epoch:
            parts.append(f"epoch {self.epoch}")
        if self.losses:
            parts.append(f"loss {self.losses[-1][1]:.4f}")
        if self.tokens_per_second:
            parts.append(f"{self.tokens_per_second:,.0f} tokens/s")
        eta = self.eta_seconds(elapsed_s) if elapsed_s is not None else None
        if eta is not None:
            parts.append(f"about {eta:.0f} s left")
        return ", ".join(parts) + "."


def progress(run: Path, running: bool, failed: bool = False) -> Progress:
    """The run's progress; ``running``: whether its training process is alive, and
    ``failed`` whether it ended with an error."""
    events = _jsonl(run / "metrics.jsonl")
    results = read_json(run / "results.json")
    if results is not None and results.get("completed", True):
        state = "finished"
    elif running:
        state = "training"
    elif failed:
        state = "failed"
    else:
        state = "stopped" if events or (run / "checkpoints").is_dir() else "not started"
    train = [e for e in events if e.get("event") == "train"]
    last = train[-1] if train else {}
    return Progress(
        state=state,
        step=int(last.get("step", 0)),
        total_steps=last.get("total_steps"),
        epoch=last.get("epoch"),
        tokens_per_second=last.get("tokens_per_second"),
        losses=[(int(e["step"]), float(e["loss"])) for e in train if "loss" in e],
    )


# ---------------------------------------------------------------------- results


def metrics_markdown(results: dict[str, Any]) -> str:
    """The test split's metrics as a table (:func:`md_table` escapes every cell)."""
    test = results.get("test") or {}
    if not test:
        return "No test metrics were recorded."
    return md_table(["metric", "test"], [[k, f"{v:.4f}" if isinstance(v, float) else v] for k, v in test.items()])


def confusion(run: Path) -> tuple[list[str], list[list[int]]] | None:
    """Labels and the confusion matrix (rows: true label, columns: predicted) of the
    test split, from ``test_predictions.jsonl``; None for a run without class labels."""
    rows = [r for r in _jsonl(run / "test_predictions.jsonl") if isinstance(r.get("prediction"), dict)]
    pairs = [(r.get("label"), r["prediction"].get("label")) for r in rows]
    pairs = [(str(t), str(p)) for t, p in pairs if t is not None and p is not None]
    if not pairs:
        return None
    labels = sorted({label for pair in pairs for label in pair})
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for true, predicted in pairs:
        matrix[index[true]][index[predicted]] += 1
    return labels, matrix


def per_class_markdown(labels: list[str], matrix: list[list[int]]) -> str:
    """Precision, recall, F1 and support per class, from the confusion matrix."""
    table = []
    for i, label in enumerate(labels):
        true_positive = matrix[i][i]
        predicted = sum(row[i] for row in matrix)
        support = sum(matrix[i])
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        table.append([label, f"{precision:.3f}", f"{recall:.3f}", f"{f1:.3f}", support])
    return md_table(["class", "precision", "recall", "F1", "support"], table)


def confusion_html(labels: list[str], matrix: list[list[int]]) -> str:
    """The confusion matrix as a shaded table (self-contained HTML, labels escaped)."""
    peak = max((max(row) for row in matrix), default=0) or 1
    head = "".join(f"<th>{html.escape(label)}</th>" for label in labels)
    body = []
    for label, row in zip(labels, matrix):
        cells = "".join(
            f"<td style='background:rgba(31,111,235,{count / peak:.2f});"
            f"color:{'#fff' if count / peak > 0.5 else '#1f2328'}'>{count}</td>"
            for count in row
        )
        body.append(f"<tr><th>{html.escape(label)}</th>{cells}</tr>")
    return (
        "<table class='confusion'><caption>Confusion matrix on the test split: rows are the true label, "
        f"columns the prediction</caption><tr><th></th>{head}</tr>{''.join(body)}</table>"
    )


def bias_markdown(run: Path) -> str:
    """Each audit's verdict with its reasons, and the release decision, in plain words."""
    record = read_json(run / "reports" / "bias.json")
    if record is None:
        return "No bias audit ran for this run (audit=none), so its release was never cleared."
    lines = []
    for name, audit in record["audits"].items():
        line = f"- **{md_text(name)}**: {md_text(verdict_words(audit['verdict']))}"
        if audit.get("reasons") and audit["verdict"] != "pass":
            line += " — " + "; ".join(md_text(r) for r in audit["reasons"][:5])
        lines.append(line)
    return "\n".join(["**Release decision:** " + md_text(release_sentence(record["release"])), "", "Audits:", *lines])


def release_state(run: Path) -> str:
    """allowed, blocked or not audited."""
    record = read_json(run / "reports" / "bias.json")
    if record is None:
        return "not audited"
    return "allowed" if record["release"]["allowed"] else "blocked"


def model_card(run: Path) -> str:
    try:
        return (run / "MODEL_CARD.md").read_text(encoding="utf-8")
    except OSError:
        return "No model card yet: it is written when the run finishes."


# ---------------------------------------------------------------------- history


HISTORY_COLUMNS = ["run", "model", "method", "data", "state", "accuracy", "f1_macro", "release"]


def history(runs: Path) -> list[list[Any]]:
    """One row per run folder under ``runs``, newest first."""
    from omegaconf import OmegaConf

    rows = []
    folders = [p for p in runs.iterdir() if (p / "config.yaml").is_file()] if runs.is_dir() else []
    for folder in sorted(folders, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            cfg = OmegaConf.load(folder / "config.yaml")
        except Exception:  # a hand-edited config: the row says so rather than hiding the run
            rows.append([folder.name, "?", "?", "?", "unreadable config.yaml", None, None, None])
            continue
        results = read_json(folder / "results.json") or {}
        test = results.get("test") or {}
        state = "finished" if results and results.get("completed", True) else "unfinished"
        rows.append(
            [
                folder.name,
                cfg.get("model", {}).get("kind"),
                cfg.get("method", {}).get("kind"),
                cfg.get("data", {}).get("kind"),
                state,
                _rounded(test.get("accuracy")),
                _rounded(test.get("f1_macro")),
                release_state(folder) if results else None,
            ]
        )
    return rows


def _rounded(value: Any) -> float | None:
    return round(value, 4) if isinstance(value, float) else None


def comparison_markdown(runs: Path, names: list[str]) -> str:
    """Runs side by side: their test metrics and the overrides that made them differ."""
    columns = []
    for name in names:
        results = read_json(runs / name / "results.json") or {}
        columns.append((name, results.get("test") or {}))
    metrics = sorted({metric for _, test in columns for metric in test})
    if not metrics:
        return "Choose finished runs to compare."
    table = [
        [metric] + [f"{test[metric]:.4f}" if isinstance(test.get(metric), float) else "" for _, test in columns]
        for metric in metrics
    ]
    return md_table(["metric", *(name for name, _ in columns)], table)
