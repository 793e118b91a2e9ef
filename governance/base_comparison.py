"""Did fine-tuning introduce or amplify a disparity? The audits, before and after.

Auditing the base model is possible when its checkpoint already has a head for
exactly the run's labels (a sentiment model adapted to a new domain, say): then every
configured audit runs on it before training, and this module compares the two
results. A base model with a new, untrained head would be judged on random outputs,
so the comparison is then recorded as not possible, with the reason.

A disparity is *introduced* when an attribute's (or metric's) verdict becomes
``fail``, and *amplified* when its flip rate rises by more than 0.01 or its parity
ratio falls by more than 0.05 (or, for group metrics, the accuracy gap widens by more
than 0.02).
"""

from __future__ import annotations

from typing import Any

FLIP_RISE, RATIO_FALL, GAP_RISE = 0.01, 0.05, 0.02


def not_possible(reason: str) -> dict[str, Any]:
    return {"possible": False, "reason": reason, "summary": f"The base model was not audited: {reason}."}


def compare_with_base(base: dict[str, dict], tuned: dict[str, dict]) -> dict[str, Any]:
    """The change from ``base`` to ``tuned`` audit results, per audit and attribute."""
    audits = {}
    for name, after in tuned.items():
        before = base.get(name)
        if before is None:
            continue
        changes = _attribute_changes(before, after) if "attributes" in after else _disparity_changes(before, after)
        audits[name] = {
            "verdict": {"base": before["verdict"], "fine_tuned": after["verdict"]},
            "changes": changes,
            "introduced": [k for k, c in changes.items() if c["verdict"]["base"] != "fail" and c["verdict"]["fine_tuned"] == "fail"],
            "amplified": [k for k, c in changes.items() if c["amplified"]],
        }
    introduced = sorted({f"{n}/{k}" for n, a in audits.items() for k in a["introduced"]})
    amplified = sorted({f"{n}/{k}" for n, a in audits.items() for k in a["amplified"]})
    summary = (
        "Compared with the base model, fine-tuning "
        + (f"introduced a failing disparity in {', '.join(introduced)}" if introduced else "introduced no failing disparity")
        + (f" and amplified {', '.join(amplified)}." if amplified else " and amplified none.")
    )
    return {"possible": True, "audits": audits, "introduced": introduced, "amplified": amplified, "summary": summary}


def _attribute_changes(before: dict, after: dict) -> dict[str, dict]:
    changes = {}
    for attribute, a in after["attributes"].items():
        b = before["attributes"].get(attribute)
        if b is None:
            continue
        flips = (b["flip_rate"] or 0.0, a["flip_rate"] or 0.0)
        ratios = (b["demographic_parity_ratio"], a["demographic_parity_ratio"])
        changes[attribute] = {
            "flip_rate": {"base": flips[0], "fine_tuned": flips[1]},
            "demographic_parity_ratio": {"base": ratios[0], "fine_tuned": ratios[1]},
            "verdict": {"base": b["verdict"], "fine_tuned": a["verdict"]},
            "amplified": flips[1] > flips[0] + FLIP_RISE or ratios[1] < ratios[0] - RATIO_FALL,
        }
    return changes


def _disparity_changes(before: dict, after: dict) -> dict[str, dict]:
    changes = {}
    for metric, a in (after.get("disparities") or {}).items():
        b = (before.get("disparities") or {}).get(metric)
        if b is None:
            continue
        changes[metric] = {
            "difference": {"base": b["difference"], "fine_tuned": a["difference"]},
            "ratio": {"base": b["ratio"], "fine_tuned": a["ratio"]},
            "verdict": {"base": before["verdict"], "fine_tuned": after["verdict"]},
            "amplified": a["difference"] > b["difference"] + GAP_RISE or a["ratio"] < b["ratio"] - RATIO_FALL,
        }
    return changes
