"""``reports/bias.json`` and ``reports/bias.html``: the audit results a reviewer reads.

The JSON is the record (versioned by ``schema_version``); the HTML is rendered from it
as one self-contained page, readable without Python: a plain-language summary first,
then each audit's checks (value, interval, limit, p, verdict, what the number means and
what would settle an inconclusive one), failing ones highlighted, then per-group bars.
Every audit renders through the one result shape of ``results.py``.
"""

from __future__ import annotations

import html
from typing import Any

from omegaconf import OmegaConf

from tunewright import hookimpl
from tunewright.embedded import hub_id
from tunewright.governance.base_comparison import compare_with_base, not_possible
from tunewright.governance.mitigation import mitigation_summary
from tunewright.governance.policy import limit_text, load_policy
from tunewright.governance.results import upgrade_audit
from tunewright.release_gate import release_sentence, verdict_words
from tunewright.run_folder import atomic_write_json, atomic_write_text

# 2: one result shape for every audit (results.py): verdicts pass, inconclusive, fail,
#    not_applicable; checks with interval, meaning and what would settle them; a group
#    table with its columns; the release decision's notes. Schema 1 is read by upgrade_audit.
SCHEMA_VERSION = 2
COLOURS = {
    "pass": "#1a7f37",
    "inconclusive": "#9a6700",
    "warn": "#9a6700",
    "fail": "#cf222e",
    "not_applicable": "#57606a",
    "insufficient_data": "#57606a",
}


def bias_record(run, audits: dict[str, Any], decision: dict[str, Any], policy, base_comparison=None) -> dict[str, Any]:
    cfg = run.config
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "method": cfg.method.kind,
        "data": cfg.data.kind,
        "context": {
            "intended_use": (cfg.get("card") or {}).get("intended_use"),
            "out_of_scope_use": (cfg.get("card") or {}).get("out_of_scope_use"),
            "sensitive_columns": list(cfg.data.sensitive_columns),
            "positive_label": cfg.audit.positive_label,
        },
        "policy": {
            "name": policy.name,
            "blocking": policy.blocking,
            "checks": policy.checks,
            "min_group_size": policy.min_group_size,
            "significance": policy.significance,
            "confidence": policy.confidence,
            "inconclusive": policy.inconclusive,
        },
        "audits": audits,
        "release": decision,
        "base_model_comparison": base_comparison,
    }


@hookimpl
def tunewright_audit_completed(run, results, base, decision):
    """Write ``reports/bias.{json,html}``: the audits, what changed since the base model,
    and the release decision under the run's policy."""
    if base is None or base["possible"]:
        comparison = compare_with_base(base["results"], results) if base else None
    else:
        comparison = not_possible(base["reason"])
    write_bias_report(run, bias_record(run, results, decision, load_policy(run.config.audit.policy), comparison))


def write_bias_report(run, record: dict[str, Any]) -> None:
    reports = run.folder.path / "reports"
    atomic_write_json(reports / "bias.json", record)
    atomic_write_text(reports / "bias.html", render_html(record))


def _summary(record: dict[str, Any]) -> str:
    parts = []
    for name, audit in record["audits"].items():
        flagged = audit["reasons"][:3] if audit["verdict"] != "pass" else []
        parts.append(
            f"The <b>{html.escape(name)}</b> audit's verdict is "
            f"<b style='color:{COLOURS.get(audit['verdict'], '#000')}'>{html.escape(verdict_words(audit['verdict']))}</b>"
            + (": " + "; ".join(html.escape(r) for r in flagged) if flagged else ".")
        )
    parts.append(html.escape(release_sentence(record["release"])))
    if record.get("base_model_comparison"):
        parts.append(html.escape(record["base_model_comparison"]["summary"]))
    return "".join(f"<p>{p}</p>" for p in parts)


def _cell(value: Any, interval: list[float] | None = None) -> str:
    if value is None:
        return "<td>n/a</td>"
    if isinstance(value, str):
        return f"<td>{html.escape(value)}</td>"
    if isinstance(value, bool) or not 0 <= value <= 1:
        return f"<td>{html.escape(str(value))}</td>"
    span = f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""
    return (
        f"<td><div class='bar'><div style='width:{value * 100:.1f}%'></div></div>"
        f"{value:.3f}<span class='ci'>{span}</span></td>"
    )


def _number(value: float | None, digits: str = ".4f") -> str:
    return "" if value is None else format(value, digits)


def interval_text(interval: list[float] | None) -> str:
    return f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval else ""


def _checks_table(checks: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr class='{html.escape(c['verdict'])}'><td>{html.escape(c['subject'])}</td><td>{html.escape(c['check'])}"
        f"<div class='meaning'>{html.escape(c.get('meaning') or '')}</div></td>"
        f"<td>{_number(c['value'])} <span class='ci'>{interval_text(c.get('interval'))}</span></td>"
        f"<td>{html.escape(limit_text(c['limits']))}</td><td>{_number(c['p_value'], '.3g')}</td>"
        f"<td>{html.escape(verdict_words(c['verdict']))}"
        + (f"<div class='meaning'>{html.escape(c['settle'])}</div>" if c.get("settle") else "")
        + "</td></tr>"
        for c in checks
    )
    header = "<tr><th>subject</th><th>check</th><th>value [interval]</th><th>limit</th><th>p</th><th>verdict</th></tr>"
    return f"<table>{header}{rows}</table>" if checks else ""


def _group_table(audit: dict[str, Any]) -> str:
    columns = audit["columns"]
    header = (
        "<tr><th>subject</th><th>group</th><th>size</th>"
        + "".join(f"<th>{html.escape(t)}</th>" for _, t in columns)
        + "</tr>"
    )
    rows = ""
    for group in audit["groups"]:
        note = " (suppressed: too small)" if group.get("suppressed") else ""
        cells = "".join(_cell(group.get(key), group.get(f"{key}_ci")) for key, _ in columns)
        rows += (
            f"<tr><td>{html.escape(str(group.get('subject') or ''))}</td><td>{html.escape(str(group['group']))}{note}</td>"
            f"<td>{group.get('size', '')}</td>{cells}</tr>"
        )
    return f"<table>{header}{rows}</table>" if audit["groups"] else ""


def _audit_section(name: str, audit: dict[str, Any]) -> str:
    verdict = audit["verdict"]
    out = [
        f"<h2>{html.escape(name)}: <span class='{html.escape(verdict)}'>{html.escape(verdict_words(verdict))}</span></h2>"
    ]
    if audit["details"].get("probes"):
        out.append(
            f"<p>Probes: {html.escape(str(audit['details']['probes']))}, {audit['details'].get('templates')} templates.</p>"
        )
    out.append(_checks_table(audit["checks"]))
    out.append(_group_table(audit))
    if verdict == "not_applicable":
        out += [f"<p class='reason'>{html.escape(r)}</p>" for r in audit["reasons"]]
    if audit["details"].get("mitigation"):
        out.append(f"<p>{html.escape(mitigation_summary(audit['details']['mitigation']))}</p>")
    return "\n".join(out)


STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#1f2328;line-height:1.4}
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left}
.bar{display:inline-block;width:8rem;height:.7rem;background:#eaeef2;margin-right:.4rem}
.bar div{height:100%;background:#0969da}.ci{color:#57606a;font-size:.85em}
.plots svg{margin:.3rem .6rem .3rem 0;border:1px solid #d0d7de}tr.fail td{background:#ffebe9}tr.inconclusive td,tr.warn td{background:#fff8c5}.meaning{color:#57606a;font-size:.85em}
.pass{color:#1a7f37}.inconclusive,.warn{color:#9a6700}.fail{color:#cf222e}.not_applicable,.insufficient_data{color:#57606a}
"""


def upgrade_record(record: dict[str, Any]) -> dict[str, Any]:
    """A ``bias.json`` of any schema version with its audits in today's shape."""
    return {**record, "audits": {name: upgrade_audit(name, a) for name, a in record["audits"].items()}}


def render_html(record: dict[str, Any]) -> str:
    record = upgrade_record(record)
    sections = "".join(_audit_section(name, audit) for name, audit in record["audits"].items())
    policy = record["policy"]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Bias report {html.escape(record['run_id'])}</title>"
        f"<style>{STYLE}</style></head><body><h1>Bias report: {html.escape(record['run_id'])}</h1>"
        f"<p>Model {html.escape(hub_id(str(record['model'].get('name_or_path'))))}, method {html.escape(record['method'])}, "
        f"data {html.escape(record['data'])}; policy <b>{html.escape(policy['name'])}</b>"
        f"{' (blocking)' if policy['blocking'] else ''}.</p>"
        f"{_summary(record)}{sections}</body></html>\n"
    )
