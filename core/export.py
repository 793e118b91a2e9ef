"""``tunewright export run=<folder>``: a deployable Hugging Face directory, when release is allowed.

The directory holds the model (the adapter, or with ``merged=true`` the adapter merged
into plain weights where the method allows), its tokenizer and label names, and the
model card as ``README.md``. Export follows the run's release decision (the bias audit
verdicts under its policy): a blocked run, or one never audited, is refused unless the
user passes ``override="<reason>"``. Every export, allowed or overridden, is recorded
in the run's ``manifest.json``.

An export never deletes what tunewright did not write: the destination must be new or
empty, or, with ``overwrite=true``, an earlier export (which carries
:data:`EXPORT_MARKER`); the run folder, a folder above it and the working directory are
refused whatever the flags.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from tunewright.embedded import resolve_model_path
from tunewright.errors import TunewrightError
from tunewright.plugin_manager import get_plugins
from tunewright.predictor import load_model
from tunewright.release_gate import Clearance, clear_release
from tunewright.run_folder import RunFolder, atomic_directory


def vllm_command(run_folder: RunFolder, target: Path, merged: bool) -> str | None:
    """How to serve an exported decoder at scale with vLLM (``None`` for other tasks): the
    merged directory as the model, or the base model with the adapter as a LoRA module."""
    config = run_folder.read_config()
    task = (run_folder.read_json("manifest.json") or {}).get("task") or {}
    if task.get("pipeline_tag") != "text-generation":
        return None
    if merged:
        return f"vllm serve {target}"
    base = resolve_model_path(config.model.name_or_path)
    return f"vllm serve {base} --enable-lora --lora-modules {run_folder.path.name}={target}"


EXPORT_MARKER = ".tunewright-export.json"
RUN_EXPORT_FOLDERS = ("export", "export-onnx", "export-onnx-int8")  # the exports' own places in a run folder


FORMATS = ("hf", "onnx")


def export_run(
    folder: str | Path,
    out: str | Path | None = None,
    merged: bool = False,
    override: str | None = None,
    overwrite: bool = False,
    trust_remote_code: bool = False,
    format: str = "hf",
    quantize: str | None = None,
    max_metric_drop: float = 0.01,
    accept_drop: str | None = None,
) -> Path:
    """Write the export directory and record it; returns its path. ``format=hf``: a
    Hugging Face directory (default ``<run>/export``); ``format=onnx``: an edge artifact
    (default ``<run>/export-onnx[-int8]``, see :mod:`.edge_export`), ``quantize=int8``
    for int8 weights, refused when its test metrics fall more than ``max_metric_drop``
    unless ``accept_drop`` gives the reason to ship it anyway."""
    if format not in FORMATS:
        raise TunewrightError(f"format={format!r}: one of {', '.join(FORMATS)}")
    if format == "hf" and quantize:
        raise TunewrightError("quantize= applies to format=onnx; a Hugging Face directory keeps its weights")
    run_folder = RunFolder(folder)
    run_folder.read_config()
    default = "export" if format == "hf" else "-".join(filter(None, ["export", "onnx", quantize]))
    target = Path(out) if out else run_folder.path / default
    check_destination(target, run_folder.path, overwrite)
    with run_folder.locked("tunewright export", wait=True):
        if format == "onnx":
            drop = (max_metric_drop, accept_drop)
            return _export_onnx(run_folder, target, quantize, override, overwrite, trust_remote_code, drop)
        return _export(run_folder, target, merged, override, overwrite, trust_remote_code)


def _export_onnx(
    run_folder: RunFolder,
    target: Path,
    quantize: str | None,
    override: str | None,
    overwrite: bool,
    trust_remote_code: bool,
    drop: tuple[float, str | None],
) -> Path:
    from tunewright.edge_export import deployment_section, export_onnx

    clearance = clear_release(run_folder, "export", override)
    card = get_plugins().hook.tunewright_write_model_card(folder=run_folder.path)
    check_destination(target, run_folder.path, overwrite)
    with atomic_directory(target) as staging:
        record = export_onnx(run_folder, staging, quantize, drop[1], drop[0], trust_remote_code, override)
        text = card.read_text(encoding="utf-8") if card is not None else f"# {run_folder.path.name}\n"
        (staging / "README.md").write_text(text + deployment_section(record), encoding="utf-8")
        _write_marker(staging, run_folder, {"format": "onnx", "quantize": quantize})
    _record(
        run_folder,
        target,
        False,
        clearance,
        card,
        {"format": "onnx", "quantize": quantize, "check": record["check"], "audit": record.get("audit")},
    )
    return target


def check_destination(target: Path, run_path: Path, overwrite: bool) -> None:
    """Refuse a destination whose replacement would delete something tunewright did not
    write there, or the run itself."""
    resolved, run, here = target.resolve(), run_path.resolve(), Path.cwd().resolve()
    if run.is_relative_to(resolved):
        raise TunewrightError(
            f"export: out={target} is the run folder or holds it; choose a new folder, e.g. out={run}-export"
        )
    if here.is_relative_to(resolved):
        raise TunewrightError(f"export: out={target} is the working directory or holds it; choose a new folder")
    if resolved.is_relative_to(run) and resolved not in {run / name for name in RUN_EXPORT_FOLDERS}:
        raise TunewrightError(
            f"export: out={target} lies inside the run folder; use one of its {', '.join(RUN_EXPORT_FOLDERS)} "
            "folders or one outside it"
        )
    if not resolved.exists():
        return
    if not resolved.is_dir():
        raise TunewrightError(f"export: out={target} is a file; choose a folder")
    if not any(resolved.iterdir()):
        return
    if not (resolved / EXPORT_MARKER).is_file():
        raise TunewrightError(
            f"export: out={target} holds files tunewright did not export, and tunewright never deletes what it did "
            "not write; choose a new or empty folder"
        )
    if not overwrite:
        raise TunewrightError(f"export: out={target} holds an earlier export; pass overwrite=true to replace it")


def _export(
    run_folder: RunFolder, target: Path, merged: bool, override: str | None, overwrite: bool, trust_remote_code: bool
) -> Path:
    clearance = clear_release(run_folder, "export", override)
    loaded = load_model(run_folder, trust_remote_code=trust_remote_code)
    model = loaded.model
    if merged:
        if not loaded.method.can_merge:
            raise TunewrightError(
                f"method={loaded.config.method.kind} cannot be merged into plain weights; export without merged=true"
            )
        model = loaded.method.merge(model)
    card = get_plugins().hook.tunewright_write_model_card(folder=run_folder.path)  # None: no plugin writes cards
    check_destination(target, run_folder.path, overwrite)  # again: the folder may have changed while the model loaded
    with atomic_directory(target) as staging:
        if merged:
            model.save_pretrained(staging, safe_serialization=True)
        else:
            loaded.method.save(model, staging)
        loaded.task.save_artifacts(staging, loaded.label_names)
        if card is not None:
            shutil.copyfile(card, staging / "README.md")
        _write_marker(staging, run_folder, {"merged": merged})
    _record(run_folder, target, merged, clearance, card)
    return target


def _write_marker(staging: Path, run_folder: RunFolder, what: dict) -> None:
    """The file that says tunewright wrote this export (what overwrite=true may replace)."""
    marker = {"run": str(run_folder.path.resolve()), **what, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (staging / EXPORT_MARKER).write_text(json.dumps(marker) + "\n")


def _record(
    run_folder: RunFolder,
    target: Path,
    merged: bool,
    clearance: Clearance,
    card: Path | None,
    artifact: dict | None = None,
) -> None:
    """Append this export (for an edge artifact, its format and measured figures), and
    any override with who and why, to ``manifest.json``."""
    entry = {
        "path": str(target.resolve()),
        "merged": merged,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "release": clearance.decision,
        "override": clearance.override,
        "model_card": card.name if card is not None else None,
        **(artifact or {}),
    }
    run_folder.update_json("manifest.json", lambda manifest: manifest.setdefault("exports", []).append(entry))
