"""Bias policies: named threshold sets in ``governance/policies/<name>.yaml``, and the
verdict rule every audit shares.

A check compares one measured value with its limit (``min`` or ``max``):

* violated and significant (p below ``significance``, or no test applies) -> ``fail``;
* violated but not significant, or within ``warn_margin`` (a fraction of the limit)
  of the limit -> ``warn``;
* otherwise -> ``pass``.

An audit's verdict is the worst of its checks; with too little data to measure it is
``insufficient_data``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from tunewright.errors import ConfigError

VERDICT_ORDER = ("pass", "insufficient_data", "warn", "fail")


@dataclass(frozen=True)
class Policy:
    name: str
    blocking: bool
    min_group_size: int
    significance: float
    warn_margin: float
    checks: dict[str, dict[str, float]]
    not_significant: str = "warn"  # verdict when p >= significance: warn (flag it) | pass (noise is not bias)

    def check(self, name: str, value: float | None, p_value: float | None = None, subject: str = "") -> dict[str, Any] | None:
        """The outcome of check ``name`` for ``value``; ``None`` when the policy has no such check."""
        limits = self.checks.get(name)
        if limits is None:
            return None
        outcome = {"check": name, "subject": subject, "value": value, "limits": dict(limits), "p_value": p_value}
        if value is None:
            return {**outcome, "verdict": "insufficient_data", "reason": f"{subject}: {name} could not be measured"}
        low, high = limits.get("min"), limits.get("max")
        violated = (low is not None and value < low) or (high is not None and value > high)
        # The margin is relative to the limit: 5% of a 0.02 flip-rate limit, of a 0.8 ratio.
        near = (low is not None and value < low * (1 + self.warn_margin)) or (
            high is not None and value > high * (1 - self.warn_margin)
        )
        significant = p_value is None or p_value < self.significance
        bound = limit_text(limits)
        if violated and significant:
            verdict, why = "fail", f"{subject}: {name} = {value:.4f} breaks the limit {bound}"
        elif violated:
            verdict = self.not_significant
            why = f"{subject}: {name} = {value:.4f} breaks {bound} but p = {p_value:.3f} is not significant"
        elif near and not significant and self.not_significant == "pass":
            verdict, why = "pass", f"{subject}: {name} = {value:.4f} is near {bound}, not significantly"
        elif near:
            verdict, why = "warn", f"{subject}: {name} = {value:.4f} is within {self.warn_margin:.0%} of the limit {bound}"
        else:
            verdict, why = "pass", f"{subject}: {name} = {value:.4f} within {bound}"
        if p_value is not None:
            why += f" (p = {p_value:.3g})"
        return {**outcome, "verdict": verdict, "reason": why}


def limit_text(limits: dict[str, float]) -> str:
    """A check's limits as a reader writes them: ``≥ 0.8``, ``≤ 0.02``, or both."""
    parts = [f"≥ {limits['min']:g}"] if limits.get("min") is not None else []
    parts += [f"≤ {limits['max']:g}"] if limits.get("max") is not None else []
    return " and ".join(parts) or "no limit"


def failing_checks(result: Any) -> list[dict[str, Any]]:
    """Every check outcome (a :meth:`Policy.check` result) in an audit result whose
    verdict is ``fail``, wherever the audit keeps them (per attribute, per group, ...)."""
    if isinstance(result, dict):
        if "check" in result and "verdict" in result and "reason" in result:
            return [result] if result["verdict"] == "fail" else []
        return [check for value in result.values() for check in failing_checks(value)]
    if isinstance(result, list):
        return [check for value in result for check in failing_checks(value)]
    return []


def worst(verdicts: list[str]) -> str:
    return max(verdicts, key=VERDICT_ORDER.index) if verdicts else "insufficient_data"


def load_policy(name_or_path: str) -> Policy:
    """A bundled policy by name (``default``, ``lenient``) or a YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = Path(str(files("tunewright.governance.policies") / f"{name_or_path}.yaml"))
        if not path.is_file():
            bundled = sorted(p.name[:-5] for p in files("tunewright.governance.policies").iterdir() if p.name.endswith(".yaml"))
            raise ConfigError(f"audit.policy: no policy {name_or_path!r}; bundled: {', '.join(bundled)}, or a path to a YAML file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        policy = Policy(
            name=raw.get("name", path.stem), blocking=bool(raw["blocking"]), min_group_size=int(raw["min_group_size"]),
            significance=float(raw["significance"]), warn_margin=float(raw["warn_margin"]), checks=dict(raw["checks"]),
            not_significant=str(raw.get("not_significant", "warn")),
        )  # fmt: skip
        if policy.not_significant not in ("warn", "pass"):
            raise ValueError(f"not_significant: {policy.not_significant!r} is not warn or pass")
        return policy
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as error:
        raise ConfigError(f"audit.policy: {path} is not a valid policy ({type(error).__name__}: {error})") from None
