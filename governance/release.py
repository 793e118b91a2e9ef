"""The builtin release decision: what the evidence condemns blocks release, nothing else.

Under a blocking policy a ``fail`` check blocks (and, where the policy says
``inconclusive: block``, an inconclusive one too). Only those checks are listed as
reasons; the rest are notes: inconclusive checks with what would settle them, and
audits that had nothing to judge (``not_applicable``) with the evidence they miss.

It answers ``tunewright_release_decision`` last (``trylast``), so any plugin with its
own rule answers first and wins (the hook is ``firstresult``).
"""

from __future__ import annotations

from tunewright import hookimpl
from tunewright.governance.policy import blocking_checks, load_policy
from tunewright.governance.results import upgrade_audit


@hookimpl(trylast=True)
def tunewright_release_decision(run, results):
    policy = load_policy(run.config.audit.policy)
    blocking, notes = [], []
    for name, recorded in results.items():
        audit = upgrade_audit(name, recorded)
        blocked = blocking_checks(audit, policy.inconclusive)
        blocking += [f"{name}: {check['reason']}" for check in blocked]
        if audit["verdict"] == "not_applicable":
            notes += [f"{name} not applicable: {reason}" for reason in audit["reasons"]]
        notes += [
            f"{name} inconclusive: {c['reason']}" + (f"; {c['settle']}" if c.get("settle") else "")
            for c in audit["checks"]
            if c["verdict"] == "inconclusive" and c not in blocked
        ]
    if blocking and policy.blocking:
        return {"allowed": False, "policy": policy.name, "reasons": blocking, "notes": notes}
    return {"allowed": True, "policy": policy.name, "reasons": [f"not blocking: {r}" for r in blocking], "notes": notes}
