"""What a study leaves for people: ``trials.csv``, ``study.json`` and ``report.html``.

The page is self-contained (inline SVG, no script, every user string escaped): the
recommended trial and why, the optimisation history, the Pareto front of a
two-objective study, the parameters' importances, and a table of every trial linking
its run folder.
"""

from __future__ import annotations

import csv
import html
import io
import warnings
from typing import Any

from tunewright.markdown import md_table
from tunewright.run_folder import atomic_write_json, atomic_write_text

WIDTH, HEIGHT, MARGIN = 480, 200, 34
COMPLETE, BEST, OTHER = "#0969da", "#cf222e", "#8c959f"


def trial_rows(study) -> list[dict[str, Any]]:
    """One row per trial: number, state, run folder, objective values, parameters, test metrics."""
    rows = []
    for trial in study.optuna_study.trials:
        values = trial.values or [None] * len(study.objectives)
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name.lower(),
                "run_id": trial.user_attrs.get("run_id"),
                **{o.name: v for o, v in zip(study.objectives, values)},
                "release_allowed": (
                    not trial.user_attrs["release_blocked"] if "release_blocked" in trial.user_attrs else None
                ),
                "test": trial.user_attrs.get("test"),
                "params": trial.params,
                "error": trial.user_attrs.get("error"),
            }
        )
    return rows


def feasible_complete(study) -> list:
    from optuna.trial import TrialState

    keep_allowed = study.settings.constraint == "release"
    return [
        t
        for t in study.optuna_study.trials
        if t.state == TrialState.COMPLETE and not (keep_allowed and t.user_attrs.get("release_blocked"))
    ]


def pareto_front(study) -> list:
    """The feasible finished trials no other feasible one beats on every objective."""
    trials = feasible_complete(study)
    signs = [1 if o.direction == "maximize" else -1 for o in study.objectives]

    def dominates(a, b) -> bool:
        pairs = [(s * x, s * y) for s, x, y in zip(signs, a.values, b.values)]
        return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)

    return [t for t in trials if not any(dominates(other, t) for other in trials if other is not t)]


def recommendation(study) -> dict[str, Any] | None:
    """The trial to use, and why: the best on the first objective among the Pareto front
    (with one objective, simply the best), of the trials the constraint keeps."""
    front = pareto_front(study)
    if not front:
        return None
    first = study.objectives[0]
    pick = (max if first.direction == "maximize" else min)(front, key=lambda t: t.values[0])
    values = ", ".join(f"{o.name} {v:.4f}" for o, v in zip(study.objectives, pick.values))
    why = f"best {first.name} ({values})"
    if len(study.objectives) > 1:
        why = f"on the Pareto front of {len(front)} trials, the best {first.name} ({values})"
    if study.settings.constraint == "release":
        why += "; its release is allowed"
    return {"number": pick.number, "run_id": pick.user_attrs.get("run_id"), "why": why, "params": pick.params}


def summary_table(study) -> str:
    """The trials as a Markdown table (terminal and ``trials.md``)."""
    names = [o.name for o in study.objectives]
    rows = [
        [
            row["number"],
            row["state"],
            row["run_id"],
            *(f"{row[n]:.4f}" if isinstance(row[n], float) else "" for n in names),
            ", ".join(f"{k}={_short(v)}" for k, v in row["params"].items()),
        ]
        for row in trial_rows(study)
    ]
    return md_table(["trial", "state", "run", *names, "parameters"], rows)


def write_report(study) -> None:
    rows = trial_rows(study)
    best = recommendation(study)
    atomic_write_json(
        study.folder / "study.json",
        {"objectives": [o.name + ":" + o.direction for o in study.objectives], "recommended": best, "trials": rows},
    )
    atomic_write_text(study.folder / "trials.csv", _csv(rows, study))
    atomic_write_text(study.folder / "trials.md", summary_table(study) + "\n")
    atomic_write_text(study.folder / "report.html", _html(study, rows, best))


def _csv(rows: list[dict[str, Any]], study) -> str:
    params = sorted({k for row in rows for k in row["params"]})
    columns = ["number", "state", "run_id", *(o.name for o in study.objectives), "release_allowed", *params]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, row["params"].get(c)) for c in columns])
    return out.getvalue()


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _importances(study) -> dict[str, float]:
    """Each parameter's share of the first objective's variation (Optuna's default evaluator);
    empty until two trials with different values have finished."""
    import optuna

    finished = feasible_complete(study)
    if len(finished) < 2:
        return {}
    sign = -1 if study.objectives[0].direction == "maximize" else 1  # the evaluator favours low targets
    with warnings.catch_warnings():  # its notes on few trials are not the reader's concern
        warnings.simplefilter("ignore")
        try:
            return optuna.importance.get_param_importances(study.optuna_study, target=lambda t: sign * t.values[0])
        except (ValueError, RuntimeError):  # too few distinct values to apportion
            return {}


def _html(study, rows: list[dict[str, Any]], best: dict[str, Any] | None) -> str:
    e = html.escape
    first = study.objectives[0].name
    history = [(row["number"], row[first]) for row in rows if row["state"] == "complete"]
    parts = [
        "<!doctype html><meta charset='utf-8'><title>tunewright study</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}"
        "table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:3px 6px;text-align:left}</style>",
        f"<h1>Study {e(study.folder.name)}</h1>",
        f"<p>Objectives: {e(', '.join(o.name + ' (' + o.direction + ')' for o in study.objectives))}. "
        f"Trials: {len(rows)} ({', '.join(f'{n} {s}' for s, n in _counts(rows).items())}).</p>",
    ]
    if best:
        link = f"trials/{best['run_id']}/MODEL_CARD.md"
        parts.append(
            f"<p><b>Recommended: trial {best['number']}</b>, <a href='{e(link)}'>{e(str(best['run_id']))}</a>: "
            f"{e(best['why'])}.</p>"
        )
    else:
        parts.append("<p>No trial has finished yet (or none the constraint keeps).</p>")
    parts.append(
        f"<h2>Optimisation history</h2>{_history_svg(history, study.objectives[0].direction, first)}"
        "<p>Blue: each finished trial; red: the best so far.</p>"
    )
    if len(study.objectives) == 2:
        front = {t.number for t in pareto_front(study)}
        names = [o.name for o in study.objectives]
        points = [(row[names[0]], row[names[1]], row["number"] in front) for row in rows if row["state"] == "complete"]
        parts.append(
            "<h2>Pareto front</h2>"
            + _scatter_svg(points, study.objectives[0].name, study.objectives[1].name)
            + "<p>Red: the trials no other beats on both objectives.</p>"
        )
    importances = _importances(study)
    if importances:
        parts.append("<h2>Parameter importance</h2>" + _bars_svg(importances))
    header = ["trial", "state", "run", *(o.name for o in study.objectives), "release allowed", "parameters"]
    parts.append("<h2>Trials</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        values = [f"{row[o.name]:.4f}" if isinstance(row[o.name], float) else "" for o in study.objectives]
        card = f"trials/{row['run_id']}/MODEL_CARD.md"
        run = f"<a href='{e(card)}'>{e(str(row['run_id']))}</a>"
        params = ", ".join(f"{k}={_short(v)}" for k, v in row["params"].items())
        state = row["state"] + (f": {row['error']}" if row.get("error") else "")
        cells = [str(row["number"]), state, run, *values, str(row["release_allowed"]), params]
        parts.append("<tr>" + "".join(f"<td>{c if i == 2 else e(c)}</td>" for i, c in enumerate(cells)) + "</tr>")
    parts.append("</table>")
    return "\n".join(parts) + "\n"


def _counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    return counts


def _scale(values: list[float], size: float, flip: bool = False):
    low, high = min(values), max(values)
    span = (high - low) or 1.0

    def at(value: float) -> float:
        share = (value - low) / span
        return MARGIN + (1 - share if flip else share) * (size - 2 * MARGIN)

    return at, low, high


def _axes(x_label: str, y_label: str, y_low: float, y_high: float) -> str:
    e = html.escape
    return (
        f"<line x1='{MARGIN}' y1='{HEIGHT - MARGIN}' x2='{WIDTH - MARGIN}' y2='{HEIGHT - MARGIN}' stroke='#57606a'/>"
        f"<line x1='{MARGIN}' y1='{MARGIN}' x2='{MARGIN}' y2='{HEIGHT - MARGIN}' stroke='#57606a'/>"
        f"<text x='{WIDTH / 2}' y='{HEIGHT - 6}' font-size='11' text-anchor='middle'>{e(x_label)}</text>"
        f"<text x='4' y='{MARGIN - 10}' font-size='11'>{e(y_label)} ({y_low:.3g} to {y_high:.3g})</text>"
    )


def _history_svg(history: list[tuple[int, float]], direction: str, name: str) -> str:
    """Each finished trial's value (dots) and the best so far (a step line)."""
    if not history:
        return "<p>No trial has a value yet.</p>"
    x_at, _, _ = _scale([float(n) for n, _ in history], WIDTH)
    y_at, low, high = _scale([v for _, v in history], HEIGHT, flip=True)
    dots = "".join(f"<circle cx='{x_at(n):.1f}' cy='{y_at(v):.1f}' r='3' fill='{COMPLETE}'/>" for n, v in history)
    best, line = None, []
    for n, v in history:
        best = v if best is None else (max(best, v) if direction == "maximize" else min(best, v))
        line.append(f"{x_at(n):.1f},{y_at(best):.1f}")
    path = f"<polyline fill='none' stroke='{BEST}' points='{' '.join(line)}'/>"
    return f"<svg width='{WIDTH}' height='{HEIGHT}'>{_axes('trial', name, low, high)}{path}{dots}</svg>"


def _scatter_svg(points: list[tuple[float, float, bool]], x_name: str, y_name: str) -> str:
    if not points:
        return "<p>No trial has both values yet.</p>"
    x_at, x_low, x_high = _scale([p[0] for p in points], WIDTH)
    y_at, y_low, y_high = _scale([p[1] for p in points], HEIGHT, flip=True)
    dots = "".join(
        f"<circle cx='{x_at(x):.1f}' cy='{y_at(y):.1f}' r='4' fill='{BEST if on_front else OTHER}'/>"
        for x, y, on_front in points
    )
    label = f"{x_name} ({x_low:.3g} to {x_high:.3g})"
    return f"<svg width='{WIDTH}' height='{HEIGHT}'>{_axes(label, y_name, y_low, y_high)}{dots}</svg>"


def _bars_svg(importances: dict[str, float]) -> str:
    e = html.escape
    row_height = 18
    height = row_height * len(importances) + 10
    bars = []
    for i, (name, share) in enumerate(importances.items()):
        y = 5 + i * row_height
        bars.append(
            f"<text x='0' y='{y + 12}' font-size='11'>{e(name)}</text>"
            f"<rect x='200' y='{y + 2}' width='{share * (WIDTH - 260):.1f}' height='12' fill='{COMPLETE}'/>"
            f"<text x='{205 + share * (WIDTH - 260):.1f}' y='{y + 12}' font-size='11'>{share:.2f}</text>"
        )
    return f"<svg width='{WIDTH}' height='{height}'>{''.join(bars)}</svg>"
