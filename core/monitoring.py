"""``tunewright monitor run=<folder> data=<option> [data.*=...] [monitor.*=...]``.

Reads a new batch through any dataset part (the same ``data=`` options training takes,
every split in source order), normalises its text the way training did (without
dropping duplicates: repeats are real traffic), runs it through the run's model, and
hands it to each monitor the run recorded a reference for. A batch that drifts fires
``tunewright_drift_detected``; with ``monitor.retrain=true`` a batch for which
retraining is recommended starts a new run on the old data plus the batch
(:mod:`tunewright.retrain`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from tunewright.cleaning import clean
from tunewright.config import compose_config
from tunewright.data import DomainData
from tunewright.errors import ConfigError, DataError
from tunewright.predictor import load_run
from tunewright.retrain import retrain
from tunewright.run import Run
from tunewright.run_folder import RunFolder
from tunewright.schema import part_options
from tunewright.tracking import start_trackers, stop_trackers
from tunewright.traffic_log import SERVED_DIR

REPORT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")

# Overrides that keep a batch whole and in order instead of split for training.
WHOLE_BATCH = ("data.validation_fraction=0", "data.test_fraction=0")


def monitor_run(
    folder: str | Path, overrides: list[str], plugins, trust_remote_code: bool = False
) -> list[dict[str, Any]]:
    """Monitor one batch against the run in ``folder``; returns each monitor's report.

    Monitors of one run take turns (the run folder's lock): their reports, the model
    card and a retraining's manifest links are written one process at a time.
    """
    run_folder = RunFolder(folder)
    run_folder.read_config()
    with run_folder.locked("tunewright monitor", wait=True):
        return _monitor(run_folder, overrides, plugins, trust_remote_code)


def _monitor(run_folder: RunFolder, overrides: list[str], plugins, trust_remote_code: bool) -> list[dict[str, Any]]:
    folder = run_folder.path
    run_config = run_folder.read_config()
    if not any(o.startswith("data=") for o in overrides):
        raise ConfigError("monitor: name the new batch with data=<option>, e.g. data=csv data.path=batch.csv")
    if not run_config.monitor.names:
        raise ConfigError(f"{folder}: the run was trained with monitor=none, so it has no drift reference")
    if "data=served" in overrides and "data.path" not in _keys(overrides):  # the run's own traffic log
        overrides = [*overrides, f"data.path={folder / SERVED_DIR}"]
    batch_config = compose_config(
        [*overrides, *(o for o in WHOLE_BATCH if o.split("=")[0] not in _keys(overrides))], plugins
    )
    settings = batch_config.monitor
    predictor = load_run(folder, trust_remote_code)
    examples, sources = load_batch(batch_config.data, predictor.label_names, plugins)
    name = _checked_name(settings.name) if settings.name is not None else _report_name(sources)
    run = Run(run_folder.path.name, run_config, run_folder)
    trackers = start_trackers(run, plugins)
    try:
        reports = judge_batch(run, predictor, examples, name, settings, sources, plugins)
    finally:
        stop_trackers(trackers, plugins)
    plugins.hook.tunewright_write_model_card(folder=run_folder.path)  # its drift section lists the monitored batches
    recommended = next((r for r in reports if r["retrain_recommended"]), None)
    if settings.retrain and recommended is not None:
        recommended["retraining"] = retrain(run_folder, examples, recommended, predictor.label_names, plugins)
    return reports


def judge_batch(
    run: Run, predictor, examples: list[dict[str, Any]], name: str, settings, sources, plugins
) -> list[dict]:
    """Each monitor the run recorded a reference for, on one batch (``monitor.check``);
    fires ``tunewright_monitor_completed`` and, on drift, ``tunewright_drift_detected``.
    ``tunewright monitor`` and ``tunewright serve``'s live monitoring both judge here."""
    registry, reports = plugins.registries["monitors"], []
    for monitor_name in run.config.monitor.names:
        monitor = registry.create(monitor_name, part_options(run.config.monitor, registry, monitor_name), run)
        report = monitor.check(predictor, examples, name, settings, sources)
        plugins.hook.tunewright_monitor_completed(run=run, report=report)
        if report["drift_detected"]:
            plugins.hook.tunewright_drift_detected(run=run, report=report)
        reports.append(report)
    return reports


def load_batch(data_config, label_names: list[str], plugins) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The batch's examples in source order, labels re-indexed to the run's label names."""
    cleaning = OmegaConf.merge(data_config.cleaning, {"deduplicate": "none", "remove_leakage": False})
    data, _ = clean(plugins.registries["datasets"].build(data_config).load(), cleaning)
    examples = [example for split in ("train", "validation", "test") for example in data.splits.get(split) or []]
    if not examples:
        raise DataError(f"the batch ({_describe(data)}) has no rows")
    return [_relabel(example, data.label_names, label_names, data) for example in examples], data.sources


def _relabel(
    example: dict[str, Any], batch_labels: list[str], run_labels: list[str], data: DomainData
) -> dict[str, Any]:
    if example.get("label") is None:
        return example
    name = batch_labels[example["label"]]
    if name not in run_labels:
        raise DataError(
            f"the batch ({_describe(data)}) has label {name!r}, which the model does not know; its "
            f"labels: {', '.join(run_labels)}. Map the batch's labels with data.label_map='{{{name}: "
            "<one of those>}', or monitor it unlabelled with data.label_column=null"
        )
    return {**example, "label": run_labels.index(name)}


def _describe(data: DomainData) -> str:
    return ", ".join(source["path"] for source in data.sources) or "no files"


def _checked_name(name: str) -> str:
    """``monitor.name`` becomes a file name in ``reports/``: no folders, no hidden files."""
    if not REPORT_NAME.fullmatch(name) or name.startswith("."):
        raise ConfigError(
            f"monitor.name={name!r}: use letters, digits, '_', '-' and '.' only (it names "
            "reports/drift-<name>.json), not starting with '.'"
        )
    return name


def _report_name(sources: list[dict[str, str]]) -> str:
    stem = Path(sources[0]["path"]).stem if sources else "batch"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).lstrip(".") or "batch"


def _keys(overrides: list[str]) -> set[str]:
    return {override.split("=", 1)[0].lstrip("+~") for override in overrides}
