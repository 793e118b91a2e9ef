"""Bias policies: named limit sets in ``governance/policies/<name>.yaml``, and the
verdict rule every audit shares.

A check compares one measured value with its limit (``min`` or ``max``), using the
value's confidence interval and, where the audit has one, the p-value of a test that
group membership (not chance, nor individual names) explains the difference:

* ``fail``: the value breaks the limit and the test says the groups really differ (p
  below ``significance``; where no test applies, the whole interval is beyond the
  limit). A true value just at the limit fails about half the time; the interval says
  how far from it the value lies;
* ``pass``: the far end of the interval is within the limit, so even the least
  favourable value the data allow keeps it;
* ``inconclusive``: anything else. The check says how many more units (probe members,
  test rows, texts) would settle it, from the interval's width and the p-value,
  assuming the value stays where it is.

A policy's ``inconclusive`` key says what release makes of those: ``report`` (the
default policy: shown in amber, not blocking) or ``block`` (the strict policy).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from statistics import NormalDist

import yaml

from tunewright.errors import ConfigError
from tunewright.governance.results import Check, upgrade_audit

# Keys of policies written before schema 2: read, ignored, and said once.
RETIRED_KEYS = {
    "warn_margin": "checks near their limit are judged by their interval now",
    "not_significant": "an unresolved breach is inconclusive now (inconclusive: block to block on it)",
}
POWER = 0.8  # the chance of a fail that ``Check.detectable`` is stated for


@dataclass(frozen=True)
class Policy:
    name: str
    blocking: bool
    min_group_size: int
    significance: float
    checks: dict[str, dict[str, float]]
    confidence: float = 0.95  # of every interval an audit reports
    inconclusive: str = "report"  # report | block

    def check(
        self,
        name: str,
        value: float | None,
        interval: list[float] | None,
        p_value: float | None,
        subject: str,
        meaning: str = "",
        units: tuple[int, str] | None = None,
    ) -> Check | None:
        """The verdict of check ``name`` on ``value``; ``None`` when the policy has no such check.

        :param interval: the value's interval at ``confidence`` (``None``: the value is
            exact, as a count over every probe is).
        :param p_value: that the difference is chance; ``None`` where no test applies.
        :param units: how many independent units the interval rests on, and what they
            are (``(8, "terms per group")``), for the ``settle`` estimate.
        """
        limits = self.checks.get(name)
        if limits is None:
            return None
        bound = limit_text(limits)
        if value is None:
            return Check(
                subject,
                name,
                None,
                dict(limits),
                None,
                p_value,
                "inconclusive",
                meaning,
                f"{subject}: {name} could not be measured",
                settle="more data in every group",
            )
        low, high = (interval or [value, value])[0], (interval or [value, value])[1]
        floor, ceiling = limits.get("min"), limits.get("max")
        broken = (floor is not None and value < floor) or (ceiling is not None and value > ceiling)
        # The interval's end nearest to the limit's side that is broken, and its far end.
        near = high if floor is not None else low
        far = low if floor is not None else high
        limit = floor if floor is not None else ceiling
        near_broken = near < floor if floor is not None else near > ceiling
        far_kept = far >= floor if floor is not None else far <= ceiling
        # A breach is evidence when the groups really differ (the test), or, where no test
        # applies, when the whole interval is beyond the limit.
        significant = p_value < self.significance if p_value is not None else near_broken
        shown = f"{value:.4f}" + (f" [{low:.4f}, {high:.4f}]" if interval else "")
        tested = f" (p = {p_value:.3g})" if p_value is not None else ""
        settle, detectable = None, _detectable(limit, floor is not None, interval, self.confidence)
        if broken and significant:
            verdict = "fail"
            why = f"{subject}: {name} = {shown} breaks the limit {bound}, beyond chance{tested}"
        elif not broken and far_kept:
            verdict = "pass"
            why = f"{subject}: {name} = {shown} is within {bound} across its interval{tested}"
        else:
            verdict = "inconclusive"
            if broken:
                doubt = "not beyond chance" if p_value is not None else "its interval reaches back inside the limit"
                why = f"{subject}: {name} = {shown} breaks {bound}, but {doubt}{tested}"
            else:
                why = f"{subject}: {name} = {shown} is within {bound}, but its interval reaches past the limit{tested}"
            settle = _settle(
                value, limit, near if broken else far, p_value if broken else None, self.significance, units
            )
        return Check(
            subject,
            name,
            value,
            dict(limits),
            list(interval) if interval else None,
            p_value,
            verdict,
            meaning,
            why,
            settle,
            detectable,
        )


def _z(probability: float) -> float:
    return NormalDist().inv_cdf(probability)


def _detectable(limit: float, is_floor: bool, interval: list[float] | None, confidence: float) -> float | None:
    """The true value beyond the limit whose estimate this audit's precision puts past
    the limit 4 times in 5: the limit plus z(power) standard errors, the standard error
    read off the interval's width (a fail also needs the test; see ``docs/governance.md``)."""
    if not interval:
        return None
    se = (interval[1] - interval[0]) / (2 * _z(0.5 + confidence / 2))
    shift = _z(POWER) * se
    return float(limit - shift if is_floor else limit + shift)


def _settle(value, limit, end, p_value, significance, units) -> str:
    """Roughly how many units would make the interval clear the limit (and the test
    significant), were the value to stay where it is: precision grows with the square
    root of the units."""
    if units is None or not units[0]:
        return "more probes, terms or test rows in every group"
    count, unit = units
    distance = abs(value - limit)
    if distance == 0:
        return f"the value sits on the limit; more {unit} narrow the interval but only a change of the model moves it"
    # An interval narrows with the square root of the units, except at a boundary (no
    # flip at all, equal rates): there it narrows with the units themselves.
    power = 1 if value in (0.0, 1.0) else 2
    factor = (abs(end - value) / distance) ** power if end != value else 1.0
    if p_value is not None and p_value >= significance:
        observed = _z(1 - max(p_value, 1e-12) / 2)
        factor = max(factor, (_z(1 - significance / 2) / max(observed, 1e-3)) ** 2)
    needed = math.ceil(count * max(factor, 1.0) * 1.1)
    if needed > 20 * count:
        why = (
            "the difference is within what chance gives"
            if p_value is not None
            else "the value is too close to its limit"
        )
        return f"more than {20 * count} {unit} (now {count}): {why}"
    return f"about {needed} {unit} (now {count}) would settle it, if the value holds"


def favourable_label(label_names: list[str], named: str | None) -> str | None:
    """The label whose rate parity compares: the one ``audit.positive_label`` names,
    else the last of two; a multi-class task without one compares whole distributions."""
    if named is not None:
        if named not in label_names:
            raise ConfigError(
                f"audit.positive_label: {named!r} is not a label of this model ({', '.join(label_names)})"
            )
        return named
    return label_names[-1] if len(label_names) == 2 else None


def limit_text(limits: dict[str, float]) -> str:
    """A check's limits as a reader writes them: ``≥ 0.8``, ``≤ 0.02``, or both."""
    parts = [f"≥ {limits['min']:g}"] if limits.get("min") is not None else []
    parts += [f"≤ {limits['max']:g}"] if limits.get("max") is not None else []
    return " and ".join(parts) or "no limit"


def blocking_checks(audit: dict, policy_inconclusive: str = "report") -> list[dict]:
    """The checks of a recorded audit (any schema) that block release: those that
    failed, and the inconclusive ones where the policy says ``inconclusive: block``."""
    blocking = {"fail", "inconclusive"} if policy_inconclusive == "block" else {"fail"}
    return [c for c in upgrade_audit("", audit)["checks"] if c["verdict"] in blocking]


def bundled_policies() -> list[str]:
    return sorted(p.name[:-5] for p in files("tunewright.governance.policies").iterdir() if p.name.endswith(".yaml"))


def load_policy(name_or_path: str) -> Policy:
    """A bundled policy by name (``default``, ``strict``, ``lenient``) or a YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = Path(str(files("tunewright.governance.policies") / f"{name_or_path}.yaml"))
        if not path.is_file():
            raise ConfigError(
                f"audit.policy: no policy {name_or_path!r}; bundled: {', '.join(bundled_policies())}, "
                "or a path to a YAML file"
            )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        known = {"name", "blocking", "min_group_size", "significance", "confidence", "inconclusive", "checks"}
        unknown = sorted(set(raw) - known - set(RETIRED_KEYS))
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r}; a policy has {', '.join(sorted(known))}")
        for key in sorted(set(raw) & set(RETIRED_KEYS)):
            print(f"tunewright: {path}: {key} is no longer read ({RETIRED_KEYS[key]})", file=sys.stderr)
        policy = Policy(
            name=raw.get("name", path.stem),
            blocking=bool(raw["blocking"]),
            min_group_size=int(raw["min_group_size"]),
            significance=float(raw["significance"]),
            checks=dict(raw["checks"]),
            confidence=float(raw.get("confidence", 0.95)),
            inconclusive=str(raw.get("inconclusive", "report")),
        )
        if policy.inconclusive not in ("report", "block"):
            raise ValueError(f"inconclusive: {policy.inconclusive!r} is not report or block")
        if not 0.5 < policy.confidence < 1:
            raise ValueError(f"confidence: {policy.confidence} is not between 0.5 and 1")
        return policy
    except (OSError, KeyError, TypeError, ValueError, AttributeError, yaml.YAMLError) as error:
        raise ConfigError(f"audit.policy: {path} is not a valid policy ({type(error).__name__}: {error})") from None
