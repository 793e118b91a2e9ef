"""``tunewright export run=<folder>``: a deployable Hugging Face directory, when release is allowed.

The directory holds the model (the adapter, or with ``merged=true`` the adapter merged
into plain weights where the method allows), its tokenizer and label names, and the
model card as ``README.md``. Export follows the run's release decision (the bias audit
verdicts under its policy): a blocked run, or one never audited, is refused unless the
user passes ``override="<reason>"``. Every export, allowed or overridden, is recorded
in the run's ``manifest.json``.
"""

from __future__ import annotations

import getpass
import shutil
import time
from pathlib import Path
from typing import Any

from tunewright.errors import ReleaseBlockedError, TunewrightError
from tunewright.governance.model_card import CARD_FILE, write_model_card
from tunewright.predictor import load_model
from tunewright.run_folder import RunFolder, atomic_directory


def release_decision(run_folder: RunFolder) -> dict[str, Any] | None:
    """The decision recorded in ``reports/bias.json``; ``None`` when no audit ran."""
    bias = run_folder.read_json("reports/bias.json")
    return bias["release"] if bias else None


def export_run(folder: str | Path, out: str | Path | None = None, merged: bool = False, override: str | None = None) -> Path:
    """Write the export directory (default ``<run>/export``) and record it; returns its path."""
    run_folder = RunFolder(folder)
    run_folder.read_config()
    decision = release_decision(run_folder)
    allowed = bool(decision and decision["allowed"])
    if not allowed and not override:
        why = "; ".join(decision["reasons"]) if decision else "no bias audit ran (audit=none), so release was never cleared"
        raise ReleaseBlockedError(
            f"{run_folder.path}: release blocked: {why}. See reports/bias.html; to export anyway, "
            'pass override="<your reason>" (it is recorded in manifest.json)'
        )
    loaded = load_model(run_folder)
    model = loaded.model
    if merged:
        merge = getattr(loaded.method, "merge", None)
        if merge is None:
            raise TunewrightError(f"method={loaded.config.method.kind} cannot be merged into plain weights; export without merged=true")
        model = merge(model)
    target = Path(out) if out else run_folder.path / "export"
    card = write_model_card(run_folder.path)
    with atomic_directory(target) as staging:
        if merged:
            model.save_pretrained(staging, safe_serialization=True)
        else:
            loaded.method.save(model, staging)
        loaded.task.save_artifacts(staging, loaded.label_names)
        shutil.copyfile(card, staging / "README.md")
    _record(run_folder, target, merged, decision, None if allowed else override)
    return target


def _record(run_folder: RunFolder, target: Path, merged: bool, decision, override: str | None) -> None:
    """Append this export, and any override with who and why, to ``manifest.json``."""
    entry = {
        "path": str(target.resolve()),
        "merged": merged,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "release": decision,
        "override": {"reason": override, "user": getpass.getuser()} if override else None,
        "model_card": CARD_FILE,
    }  # fmt: skip
    run_folder.update_json("manifest.json", lambda manifest: manifest.setdefault("exports", []).append(entry))
