"""The one result shape every bias audit returns, and that everything else renders.

An audit (builtin or a plugin's) returns an :class:`AuditResult`: a verdict, the
checks that decided it (:class:`Check`: value, limit, interval, p-value, a sentence
saying what the number means, and what would settle it when the evidence does not),
and a per-group table. ``reports/bias.json``, ``bias.html``, the model card, the W&B
tables, the base-model comparison and the release decision read only this shape, so a
third-party audit is shown like the builtin ones.

Verdicts, worst last:

* ``not_applicable``: the audit has nothing that fits this run (no probe set for the
  task, no sensitive columns); the reason says what evidence is missing.
* ``pass``: the evidence says the value is within its limit (the far end of its
  interval is inside it).
* ``inconclusive``: neither pass nor fail; ``settle`` says what more data would decide it.
* ``fail``: the limit is broken and the evidence (a test that the groups differ) says so.

Records written before schema 2 (verdicts ``warn`` and ``insufficient_data``, checks
nested per attribute) are read by :func:`upgrade_audit`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

VERDICTS = ("not_applicable", "pass", "inconclusive", "fail")
# Verdicts of records from schema 1, ranked among today's.
LEGACY_RANK = {"insufficient_data": 0.5, "warn": 2}


@dataclass
class Check:
    """One measured value judged against one policy limit."""

    subject: str  # what was measured: "gender", "accuracy group=a vs group=b"
    check: str  # the policy's name for it: flip_rate, demographic_parity_ratio, ...
    value: float | None
    limits: dict[str, float]  # {"min": 0.8} or {"max": 0.02}
    interval: list[float] | None  # the value's confidence interval (policy.confidence)
    p_value: float | None  # that the groups differ by chance; None where no test applies
    verdict: str
    meaning: str  # one sentence: what the number says about the model
    reason: str  # one line: the value, the limit and why the verdict
    settle: str | None = None  # for inconclusive checks: what would decide them
    detectable: float | None = None  # the true value whose estimate breaks the limit 4 times in 5


@dataclass
class AuditResult:
    """What one audit found."""

    audit: str
    verdict: str
    checks: list[Check] = field(default_factory=list)
    columns: list[list[str]] = field(default_factory=list)  # [key, title] of the group table's value columns
    groups: list[dict[str, Any]] = field(default_factory=list)  # rows: subject, group, size and the columns' keys
    reasons: list[str] = field(default_factory=list)  # one line per check that did not pass, or why not applicable
    details: dict[str, Any] = field(default_factory=dict)  # the audit's own extras (probes, mitigation, ...)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def worst(verdicts: list[str]) -> str:
    """The verdict that decides: fail over inconclusive over pass over not applicable."""
    return max(verdicts, key=rank) if verdicts else "not_applicable"


def rank(verdict: str) -> float:
    return VERDICTS.index(verdict) if verdict in VERDICTS else LEGACY_RANK.get(verdict, 2)


def audit_verdict(checks: list[Check]) -> str:
    return worst([c.verdict for c in checks])


def not_applicable(audit: str, reason: str, **details: Any) -> AuditResult:
    return AuditResult(audit, "not_applicable", reasons=[reason], details=details)


def upgrade_audit(name: str, audit: dict[str, Any]) -> dict[str, Any]:
    """An audit as recorded by any schema version, in today's shape (schema 1 nested
    the counterfactual checks per attribute and had no group table columns)."""
    if "columns" in audit:
        return audit
    checks = list(_legacy_checks(audit))
    if audit.get("attributes"):
        columns = [["positive_rate", "positive rate"]]
        groups = [
            {"subject": attribute, **g, "size": g.get("probes")}
            for attribute, result in audit["attributes"].items()
            for g in result.get("groups", [])
        ]
    else:
        columns = [["accuracy", "accuracy"], ["selection_rate", "selection rate"]]
        groups = [{"subject": "", **g} for g in audit.get("groups", [])]
    upgraded = [{"interval": None, "meaning": "", "settle": None, "detectable": None, **c} for c in checks]
    return {
        "audit": audit.get("audit", name),
        "verdict": audit["verdict"],
        "checks": upgraded,
        "columns": columns,
        "groups": groups,
        "reasons": audit.get("reasons", []),
        "details": {},
    }


def _legacy_checks(value: Any):
    if isinstance(value, dict):
        if "check" in value and "verdict" in value and "reason" in value:
            yield value
            return
        for item in value.values():
            yield from _legacy_checks(item)
    elif isinstance(value, list):
        for item in value:
            yield from _legacy_checks(item)
