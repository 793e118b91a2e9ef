"""``reports/bias.json`` and ``reports/bias.html``: the audit results a reviewer reads.

The JSON is the record (versioned by ``schema_version``); the HTML is rendered from it
as one self-contained page, readable without Python: a plain-language summary first,
then each check with failing ones highlighted, then per-group bars with intervals.
"""

from __future__ import annotations

import html
from typing import Any

from omegaconf import OmegaConf

from tunewright.embedded import hub_id
from tunewright.governance.mitigation import mitigation_summary
from tunewright.governance.policy import limit_text
from tunewright.run_folder import atomic_write_json, atomic_write_text

SCHEMA_VERSION = 1
COLOURS = {"pass": "#1a7f37", "warn": "#9a6700", "fail": "#cf222e", "insufficient_data": "#57606a"}


def bias_record(run, audits: dict[str, Any], decision: dict[str, Any], policy, base_comparison=None) -> dict[str, Any]:
    cfg = run.config
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "method": cfg.method.kind,
        "data": cfg.data.kind,
        "context": {"intended_use": (cfg.get("card") or {}).get("intended_use"),
                    "out_of_scope_use": (cfg.get("card") or {}).get("out_of_scope_use"),
                    "sensitive_columns": list(cfg.data.sensitive_columns), "positive_label": cfg.audit.positive_label},
        "policy": {"name": policy.name, "blocking": policy.blocking, "checks": policy.checks,
                   "min_group_size": policy.min_group_size, "significance": policy.significance},  # fmt: skip
        "audits": audits,
        "release": decision,
        "base_model_comparison": base_comparison,
    }


def write_bias_report(run, record: dict[str, Any]) -> None:
    reports = run.folder.path / "reports"
    atomic_write_json(reports / "bias.json", record)
    atomic_write_text(reports / "bias.html", render_html(record))


def _summary(record: dict[str, Any]) -> str:
    parts = []
    for name, audit in record["audits"].items():
        failing = [r for r in audit.get("reasons", []) if r]
        parts.append(
            f"The <b>{html.escape(name)}</b> audit's verdict is "
            f"<b style='color:{COLOURS.get(audit['verdict'], '#000')}'>{audit['verdict']}</b>"
            + (": " + "; ".join(html.escape(r) for r in failing[:3]) if failing and audit["verdict"] != "pass" else ".")
        )
    release = record["release"]
    parts.append(
        "Release is <b>" + ("allowed" if release["allowed"] else "blocked") + "</b>"
        + (": " + "; ".join(html.escape(r) for r in release["reasons"]) if release["reasons"] else ".")
    )
    if record.get("base_model_comparison"):
        parts.append(html.escape(record["base_model_comparison"]["summary"]))
    return "".join(f"<p>{p}</p>" for p in parts)


def _bar(value: float | None, interval: list[float] | None) -> str:
    if value is None:
        return "<td>n/a</td>"
    width = max(0.0, min(1.0, value)) * 100
    span = f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""
    return (f"<td><div class='bar'><div style='width:{width:.1f}%'></div></div>"
            f"{value:.3f}<span class='ci'>{span}</span></td>")  # fmt: skip


def _number(value: float | None, digits: str = ".4f") -> str:
    return "" if value is None else format(value, digits)


def _checks_table(checks: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr class='{c['verdict']}'><td>{html.escape(c['subject'])}</td><td>{c['check']}</td>"
        f"<td>{_number(c['value'])}</td><td>{html.escape(limit_text(c['limits']))}</td>"
        f"<td>{_number(c['p_value'], '.3g')}</td><td>{c['verdict']}</td></tr>"
        for c in checks
    )
    header = "<tr><th>subject</th><th>check</th><th>value</th><th>limit</th><th>p</th><th>verdict</th></tr>"
    return f"<table>{header}{rows}</table>"


def _group_table(groups: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    header = "<tr><th>group</th><th>size</th>" + "".join(f"<th>{title}</th>" for _, title in columns) + "</tr>"
    rows = ""
    for group in groups:
        size = group.get("size", group.get("probes"))
        note = " (suppressed: too small)" if group.get("suppressed") else ""
        cells = "".join(_bar(group.get(key), group.get(f"{key}_ci")) for key, _ in columns)
        rows += f"<tr><td>{html.escape(group['group'])}{note}</td><td>{size}</td>{cells}</tr>"
    return f"<table>{header}{rows}</table>"


def _audit_section(name: str, audit: dict[str, Any]) -> str:
    out = [f"<h2>{html.escape(name)}: <span class='{audit['verdict']}'>{audit['verdict']}</span></h2>"]
    if audit.get("attributes"):
        for attribute, result in audit["attributes"].items():
            out.append(f"<h3>{html.escape(attribute)}: {result['verdict']} (flip rate {_number(result['flip_rate'])}, "
                       f"{html.escape(result['test'])}, p = {_number(result['p_value'], '.3g')})</h3>")  # fmt: skip
            out.append(_group_table(result["groups"], [("positive_rate", "positive rate")]))
            out.append(_checks_table(result["checks"]))
    else:
        out.append(_group_table(audit.get("groups", []), [("accuracy", "accuracy"), ("selection_rate", "selection rate")]))
        out.append(_checks_table(audit.get("checks", [])))
    out += [f"<p class='reason'>{html.escape(r)}</p>" for r in audit.get("reasons", []) if audit["verdict"] != "pass"]
    if audit.get("mitigation"):
        out.append(f"<p>{html.escape(mitigation_summary(audit['mitigation']))}</p>")
    return "\n".join(out)


STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#1f2328;line-height:1.4}
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left}
.bar{display:inline-block;width:8rem;height:.7rem;background:#eaeef2;margin-right:.4rem}
.bar div{height:100%;background:#0969da}.ci{color:#57606a;font-size:.85em}
tr.fail td{background:#ffebe9}tr.warn td{background:#fff8c5}
.pass{color:#1a7f37}.warn{color:#9a6700}.fail{color:#cf222e}.insufficient_data{color:#57606a}
"""


def render_html(record: dict[str, Any]) -> str:
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
