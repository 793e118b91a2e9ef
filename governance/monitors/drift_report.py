"""``reports/drift-<name>.json`` and ``.html``, plus evidently's detailed pages.

The JSON is the record. The HTML is rendered from it, self-contained: the verdict and
recommendation in plain words, what is inconclusive and what would settle it, then per
window a table of each layer's score, threshold and outcome (drifted rows red,
inconclusive ones amber) and an inline picture of every column that moved (reference
against batch: descriptor and confidence histograms, predicted-label shares) and, for
several windows, each layer's score over the windows. Evidently's own page for each
judged window (``drift-<name>[.w<i>].evidently.html``) has its full plots.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from tunewright.governance.bias_report import STYLE
from tunewright.governance.svg import paired_bars, score_lines
from tunewright.run_folder import atomic_write_json, atomic_write_text


def write_drift_report(run_folder: Path, report: dict[str, Any], snapshots: list) -> list[str]:
    """Write the JSON, the summary page and evidently's pages; returns their paths
    relative to the run folder."""
    reports = Path(run_folder) / "reports"
    stem = f"drift-{report['name']}"
    files = [f"reports/{stem}.json", f"reports/{stem}.html"]
    for index, snapshot in enumerate(snapshots):
        if snapshot is not None:
            name = f"{stem}.evidently.html" if len(snapshots) == 1 else f"{stem}.w{index}.evidently.html"
            atomic_write_text(reports / name, snapshot.get_html_str(as_iframe=False))
            files.append(f"reports/{name}")
    atomic_write_json(reports / f"{stem}.json", {**report, "files": files})
    atomic_write_text(reports / f"{stem}.html", render_html(report, files))
    return files


def _row(label: str, entry: dict[str, Any]) -> str:
    """One table row; ``label`` is HTML already."""
    if entry.get("available") is False:
        return f"<tr><td>{label}</td><td colspan='4'>{html.escape(entry['reason'])}</td></tr>"
    p_value = entry.get("p_value")
    state = "fail" if entry["drifted"] else ("inconclusive" if entry.get("inconclusive") else "")
    return (
        f"<tr class='{state}'><td>{label}</td>"
        f"<td>{entry['score']:.4f}</td><td>{entry['threshold']}</td>"
        f"<td>{'' if p_value is None else format(p_value, '.3g')}</td>"
        f"<td>{html.escape(outcome(entry))}</td></tr>"
    )


def outcome(entry: dict[str, Any]) -> str:
    """A row's decision in words, saying which of size and significance decided it."""
    if "columns" in entry:  # a layer: its columns' rows say why
        drifted, unresolved = entry.get("drifted_columns") or [], entry.get("inconclusive_columns") or []
        if drifted:
            return f"drift in {', '.join(drifted)}"
        return f"inconclusive in {', '.join(unresolved)}" if unresolved else "no drift in any column"
    above = entry["score"] > entry["threshold"]
    p_value, alpha = entry.get("p_value"), entry.get("p_threshold")
    significant = p_value is None or alpha is None or p_value < alpha
    before, after = entry.get("reference"), entry.get("current")
    if isinstance(before, dict) and isinstance(after, dict) and "accuracy" in before and "accuracy" in after:
        # the performance layer: from what to what
        fell = f"accuracy {before['accuracy']:.3f} → {after['accuracy']:.3f}"
        if "labelled_rows" in after:
            fell += f" on the batch's {after['labelled_rows']} labelled rows"
        if entry["drifted"]:
            return f"drift: {fell}, a significant drop beyond {entry['threshold']}"
        if entry.get("inconclusive"):
            return f"inconclusive: {fell}, beyond {entry['threshold']} but not significant; more labelled rows would settle it"
        return f"no drift: {fell}"
    if entry["drifted"]:
        return "drift: larger than the threshold" + (f" and significant (p < {alpha:.3g})" if alpha else "")
    if entry.get("inconclusive") and above:
        return "inconclusive: larger than the threshold, but " + (
            f"not significant (p ≥ {alpha:.3g}); more rows would settle it"
            if alpha
            else "within what chance gives this few rows"
        )
    if entry.get("inconclusive"):
        return "inconclusive: significant and close to the threshold"
    if alpha is not None and p_value is not None and significant and not above:
        return "no drift: significant, but smaller than the threshold"
    if above and not significant:
        return f"no drift: larger than the threshold, but not significant (p ≥ {alpha:.3g})"
    return "no drift"


def _window_section(window: dict[str, Any], windowed: bool) -> str:
    title = (
        f"Window {window['index']}: rows {window['start_row']}–{window['start_row'] + window['rows'] - 1}, "
        if windowed
        else ""
    )
    out = [f"<h2>{title}{html.escape(window['status'].replace('_', ' '))} (severity {window['severity']})</h2>"]
    if windowed:  # one window's reasons are the batch's, already shown above it
        out += [f"<p class='reason'>{html.escape(r)}</p>" for r in window["reasons"]]
        out += [f"<p class='reason inconclusive'>{html.escape(n)}</p>" for n in window.get("notes", [])]
    if "layers" not in window:
        return "\n".join(out)
    header = "<tr><th>layer / column</th><th>score</th><th>threshold</th><th>p</th><th>outcome</th></tr>"
    rows = []
    for name, layer in window["layers"].items():
        rows.append(_row(f"<b>{html.escape(name)}</b>", layer))
        rows += [_row(f"· {html.escape(column)}", entry) for column, entry in layer.get("columns", {}).items()]
    out.append(f"<table>{header}{''.join(rows)}</table>")
    out += pictures(window)
    if window.get("groups"):
        cells = "".join(
            f"<tr class='{'fail' if g['drift_detected'] else ''}'><td>{html.escape(g['column'])}={html.escape(g['group'])}</td>"
            f"<td>{g['rows']}</td><td>{html.escape(g['status'].replace('_', ' '))}</td>"
            f"<td>{html.escape(', '.join(g['drifted_layers']))}</td></tr>"
            for g in window["groups"]
        )
        out.append(
            f"<h3>By sensitive group</h3><table><tr><th>group</th><th>rows</th><th>outcome</th>"
            f"<th>drifted layers</th></tr>{cells}</table>"
        )
    if window.get("bias_audit"):
        audit = window["bias_audit"]
        out.append(
            f"<h3>Bias audit on this batch: <span class='{html.escape(audit['verdict'])}'>"
            f"{html.escape(audit['verdict'].replace('_', ' '))}</span></h3>"
        )
        out += [f"<p class='reason'>{html.escape(r)}</p>" for r in audit.get("reasons", [])]
    return "\n".join(out)


def pictures(window: dict[str, Any]) -> list[str]:
    """Reference against batch for every column that drifted or is inconclusive."""
    out = []
    for name, layer in window["layers"].items():
        for column, entry in (layer.get("columns") or {}).items():
            if not (entry.get("drifted") or entry.get("inconclusive")):
                continue
            title = f"{name}: {column}"
            if "histogram" in entry:
                edges = entry["histogram"]["edges"]
                bins = [f"{low:.3g} to {high:.3g}" for low, high in zip(edges[:-1], edges[1:])]
                out.append(paired_bars(title, bins, entry["histogram"]["reference"], entry["histogram"]["current"]))
            elif isinstance(entry.get("reference"), dict) and isinstance(entry.get("current"), dict):
                labels = sorted(
                    entry["reference"], key=lambda k: -max(entry["reference"][k], entry["current"].get(k, 0))
                )[:20]
                out.append(
                    paired_bars(
                        title,
                        labels,
                        [entry["reference"][k] for k in labels],
                        [entry["current"].get(k, 0.0) for k in labels],
                    )
                )
    return [f"<div class='plots'>{''.join(out)}</div>"] if out else []


def _score_pictures(windows: list[dict[str, Any]]) -> str:
    """Each layer's score over the windows, for a batch judged in several."""
    layers = [
        name
        for name in ("descriptors", "embeddings", "predictions", "performance")
        if any((w.get("layers") or {}).get(name, {}).get("score") is not None for w in windows)
    ]
    out = []
    for name in layers:
        entries = [(w.get("layers") or {}).get(name, {}) for w in windows]
        threshold = next(e["threshold"] for e in entries if e.get("threshold") is not None)
        out.append(score_lines(f"{name} score by window", [e.get("score") for e in entries], threshold))
    return f"<h2>Scores over the windows</h2><div class='plots'>{''.join(out)}</div>" if out else ""


def render_html(report: dict[str, Any], files: list[str]) -> str:
    verdict = (
        "Drift detected"
        if report["drift_detected"]
        else ("Not enough data to judge" if report["status"] == "insufficient_data" else "No drift detected")
    )
    advice = (
        "Retraining is recommended." if report["retrain_recommended"] else "No retraining is needed on this evidence."
    )
    links = "".join(
        f"<li><a href='{html.escape(Path(f).name)}'>{html.escape(Path(f).name)}</a></li>"
        for f in files
        if f.endswith(".evidently.html")
    )
    windowed = len(report["windows"]) > 1
    sections = "".join(_window_section(window, windowed) for window in report["windows"])
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Drift report {html.escape(report['name'])}</title>"
        f"<style>{STYLE}</style></head><body><h1>Drift report: {html.escape(report['name'])}</h1>"
        f"<p>Run {html.escape(report['run_id'])}; {report['rows']} new rows against a reference of "
        f"{report['reference']['rows']} held-out rows.</p>"
        f"<p><b>{verdict}</b> (severity {report['severity']}). {advice}</p>"
        + "".join(f"<p class='reason'>{html.escape(r)}</p>" for r in report["reasons"])
        + "".join(f"<p class='reason inconclusive'>{html.escape(n)}</p>" for n in report.get("notes", []))
        + (_score_pictures(report["windows"]) if windowed else "")
        + sections
        + (f"<h2>Detailed plots (evidently)</h2><ul>{links}</ul>" if links else "")
        + "</body></html>\n"
    )
