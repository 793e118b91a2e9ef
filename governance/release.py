"""The builtin release decision: a failing check under a blocking policy blocks release.

It answers ``tunewright_release_decision`` last (``trylast``), so any plugin with its
own rule answers first and wins (the hook is ``firstresult``).
"""

from __future__ import annotations

from tunewright import hookimpl
from tunewright.governance.policy import failing_checks, load_policy


@hookimpl(trylast=True)
def tunewright_release_decision(run, results):
    policy = load_policy(run.config.audit.policy)
    failed = []
    for name, audit in results.items():
        if audit["verdict"] == "fail":  # only the checks that failed are reasons, never those that passed
            checks = failing_checks(audit)
            failed += [f"{name}: {check['reason']}" for check in checks] or [f"{name}: {r}" for r in audit.get("reasons", [])]
    if failed and policy.blocking:
        return {"allowed": False, "policy": policy.name, "reasons": failed}
    return {"allowed": True, "policy": policy.name, "reasons": [f"not blocking: {r}" for r in failed]}
