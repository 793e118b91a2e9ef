"""Did fine-tuning introduce or amplify a disparity? The audits, before and after.

Auditing the base model is possible when its checkpoint already has a head for
exactly the run's labels (a sentiment model adapted to a new domain, say): then every
configured audit runs on it before training, and this module compares the two
results check by check (any audit: they share one result shape). A base model with a
new, untrained head would be judged on random outputs, so the comparison is then
recorded as not possible, with the reason.

A disparity is *introduced* when a check's verdict becomes ``fail``, and *amplified*
when its value moves towards breaking its limit by more than the check's margin
(``MARGINS``; a tenth of the limit for a check not listed).
"""

from __future__ import annotations

from typing import Any

from tunewright.governance.results import upgrade_audit

MARGINS = {
    "flip_rate": 0.01,
    "demographic_parity_ratio": 0.05,
    "accuracy_gap": 0.02,
    "label_distribution_distance": 0.02,
}


def not_possible(reason: str) -> dict[str, Any]:
    return {"possible": False, "reason": reason, "summary": f"The base model was not audited: {reason}."}


def compare_with_base(base: dict[str, dict], tuned: dict[str, dict]) -> dict[str, Any]:
    """The change from ``base`` to ``tuned`` audit results, per audit and check."""
    audits = {}
    for name, recorded in tuned.items():
        if name not in base:
            continue
        before, after = upgrade_audit(name, base[name]), upgrade_audit(name, recorded)
        changes = _check_changes(before["checks"], after["checks"])
        audits[name] = {
            "verdict": {"base": before["verdict"], "fine_tuned": after["verdict"]},
            "changes": changes,
            "introduced": [
                k for k, c in changes.items() if c["verdict"]["base"] != "fail" and c["verdict"]["fine_tuned"] == "fail"
            ],
            "amplified": [k for k, c in changes.items() if c["amplified"]],
        }
    introduced = sorted({f"{n}/{k}" for n, a in audits.items() for k in a["introduced"]})
    amplified = sorted({f"{n}/{k}" for n, a in audits.items() for k in a["amplified"]})
    summary = (
        "Compared with the base model, fine-tuning "
        + (
            f"introduced a failing disparity in {', '.join(introduced)}"
            if introduced
            else "introduced no failing disparity"
        )
        + (f" and amplified {', '.join(amplified)}." if amplified else " and amplified none.")
    )
    return {"possible": True, "audits": audits, "introduced": introduced, "amplified": amplified, "summary": summary}


def _check_changes(before: list[dict], after: list[dict]) -> dict[str, dict]:
    """Per ``subject check`` measured both times: values, verdicts and whether it moved
    towards its limit by more than its margin."""
    earlier = {f"{c['subject']} {c['check']}": c for c in before}
    changes = {}
    for check in after:
        key = f"{check['subject']} {check['check']}"
        old = earlier.get(key)
        if old is None or old["value"] is None or check["value"] is None:
            continue
        limits = check["limits"]
        margin = MARGINS.get(check["check"], 0.1 * abs(limits.get("min", limits.get("max", 0.0)) or 0.0))
        towards = old["value"] - check["value"] if limits.get("min") is not None else check["value"] - old["value"]
        changes[key] = {
            "value": {"base": old["value"], "fine_tuned": check["value"]},
            "verdict": {"base": old["verdict"], "fine_tuned": check["verdict"]},
            "amplified": towards > margin,
        }
    return changes
