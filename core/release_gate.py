"""What ``export`` and ``serve`` ask before a model leaves its run folder: the run's
release decision (``reports/bias.json``), or the user's recorded reason to go ahead."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Any

from tunewright.errors import ReleaseBlockedError
from tunewright.run_folder import RunFolder


@dataclass(frozen=True)
class Clearance:
    """Why a model may leave: its release decision, and the override that let a blocked one through."""

    decision: dict[str, Any] | None  # None: no audit ran
    override: dict[str, str] | None  # {"reason", "user"}, only when the decision did not allow it


def release_decision(run_folder: RunFolder) -> dict[str, Any] | None:
    """The decision recorded in ``reports/bias.json``; ``None`` when no audit ran."""
    bias = run_folder.read_json("reports/bias.json")
    return bias["release"] if bias else None


def verdict_words(verdict: str) -> str:
    """A verdict as a reader says it."""
    return verdict.replace("_", " ")


def release_sentence(release: dict[str, Any]) -> str:
    """The release decision in one sentence, for the bias report, the card and the CLI."""
    head = "Release is allowed" if release["allowed"] else "Release is blocked"
    return head + (": " + "; ".join(release["reasons"]) if release["reasons"] else ".")


def clear_release(run_folder: RunFolder, action: str, override: str | None) -> Clearance:
    """The run's clearance for ``action`` (``export``, ``serve``); a blocked or unaudited
    run without ``override`` raises :class:`ReleaseBlockedError` naming the reasons."""
    decision = release_decision(run_folder)
    if decision and decision["allowed"]:
        return Clearance(decision, None)
    if not override:
        why = (
            "; ".join(decision["reasons"]) + ". See reports/bias.html"
            if decision
            else "no bias audit ran (audit=none), so release was never cleared"
        )
        raise ReleaseBlockedError(
            f"{run_folder.path}: release blocked: {why}; to {action} anyway, "
            'pass override="<your reason>" (it is recorded in manifest.json)'
        )
    return Clearance(decision, {"reason": override, "user": getpass.getuser()})
