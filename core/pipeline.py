"""The walk every ``tunewright train`` takes:
data -> model -> method -> train -> evaluate -> audits -> monitors -> trackers.

Each box is a registered part found through the plugin registries; this module only
sequences them, writes the run folder and fires the lifecycle hooks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import random
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from tunewright import distributed, sharding
from tunewright.cleaning import clean, data_card, data_card_markdown
from tunewright.contracts import Evaluation
from tunewright.data import DomainData
from tunewright.distributed import DistributedContext
from tunewright.errors import ConfigError, DataError, RunFolderError
from tunewright.media import NOUNS
from tunewright.precision import PrecisionChoice, autocast_dtype, choose_precision, pick_device
from tunewright.predictor import Predictor
from tunewright.run import Run
from tunewright.run_folder import (
    RunFolder,
    agree_on_run_id,
    atomic_directory,
    atomic_write_text,
)
from tunewright.schema import part_options
from tunewright.token_cache import encode_cached
from tunewright.tracking import start_trackers, stop_trackers
from tunewright.trainer import Trainer
from tunewright.training_identity import config_differences
from tunewright.zero import config as zero_config
from tunewright.zero import engine as zero_engine

# Libraries whose versions the manifest records.
RECORDED_LIBRARIES = (
    "tunewright",
    "torch",
    "transformers",
    "peft",
    "hydra-core",
    "scikit-learn",
    "fairlearn",
    "evidently",
    "wandb",
    "deepspeed",
)
PREDICTIONS_FILE = "test_predictions.jsonl"
# What stands when no plugin answers tunewright_release_decision (its builtin blocked, say):
# release is not cleared, and export says why.
NO_DECISION = {
    "allowed": False,
    "policy": None,
    "reasons": [
        "no release decision: no plugin answered tunewright_release_decision "
        "(is tunewright.governance.release in TUNEWRIGHT_DISABLE_PLUGINS?)"
    ],
}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_training(cfg: DictConfig, plugins) -> dict[str, Any]:
    """Run the whole pipeline for ``cfg`` in this process (one rank of many, or the only one).

    Returns what ``results.json`` holds; ``{"completed": False, ...}`` when the run
    stopped early at ``trainer.stop_after_steps`` and can be resumed.
    """
    device = pick_device(cfg.trainer.device)
    owns_group = not torch.distributed.is_initialized()  # a distributed study's group outlives its trials
    context = _join_process_group(cfg, device)
    if context.is_distributed and device.type == "cuda":
        device = torch.device("cuda", context.local_rank)
    run_id = agree_on_run_id(cfg)
    run = Run(run_id, cfg, RunFolder(Path(cfg.paths.runs_dir) / run_id), context.rank, context.world_size)
    fresh = not run.folder.path.exists()
    trackers, failed = [], False
    with contextlib.ExitStack() as held:
        try:
            # The lock and the resume check come before anything is written: a second
            # process or a different config must not rewrite the record of a run.
            refuse_foreign_folder(run.folder)  # checked before the lock file is made in it
            if run.is_main_process:
                held.enter_context(run.folder.locked("tunewright train"))
                run.folder.remove_stale_staging()
            else:
                run.folder.create()
            require_resumable(run)
            trackers = start_trackers(run, plugins) if run.is_main_process else []
            return _train(run, plugins, device, context)
        except BaseException as error:
            plugins.hook.tunewright_run_error(run=run, error=error)
            failed = True
            if fresh and run.is_main_process:
                run.folder.remove_if_unused()
            raise
        finally:
            stop_trackers(trackers, plugins)
            if owns_group:
                distributed.teardown(graceful=not failed)


def _train(run: Run, plugins, device: torch.device, context: DistributedContext) -> dict[str, Any]:
    """The pipeline's steps, in the run folder this process now may write."""
    cfg, run_id = run.config, run.run_id
    plugins.hook.tunewright_run_start(run=run)
    seed_everything(cfg.seed)

    # Parts first: a method that cannot run here (qlora without CUDA) or an audit missing its
    # input (audit.eec.path) stops the run before any data or model loads.
    task = plugins.registries["models"].build(cfg.model)
    method = plugins.registries["methods"].build(cfg.method)
    governance = governance_parts(run, task, plugins) if run.is_main_process else {}
    precision = choose_precision(cfg.trainer.precision, device)
    deepspeed = None
    if cfg.trainer.strategy == "deepspeed":  # a contradiction in its JSON stops the run here too
        deepspeed = zero_config.resolve(cfg.trainer.deepspeed.config, cfg.trainer, context.world_size, precision.name)
    data, cleaning = clean(plugins.registries["datasets"].build(cfg.data).load(), cfg.data.cleaning)
    if not data.splits.get("test"):
        raise DataError("no test split: give a test file or a data.test_fraction above 0")
    data.splits = {split: task.prepare(examples, data.label_names) for split, examples in data.splits.items()}
    if task.head_is_new:
        _require_labelled_classes(data)
    features = {split: encode_cached(task, examples, cfg.paths.cache_dir) for split, examples in data.splits.items()}
    _require_same_data(run, data)
    if run.is_main_process:
        run.folder.write_config(cfg)
        _write_manifest(run, data, task, precision, deepspeed)
        card = data_card(cfg.data.kind, data, cleaning, list(cfg.data.sensitive_columns))
        run.folder.write_json("data_card.json", card)
        atomic_write_text(run.folder.path / "data_card.md", data_card_markdown(card))

    model = load_base(task, method, data.label_names)
    base_audits = _audit_base_model(run, task, model, data, governance.get("audits"), device) if governance else None
    model = method.apply(model, task)
    task.keep_frozen(model)
    trainer = Trainer(run, model, task, cfg.trainer, plugins.hook, context, device, deepspeed)
    fit = trainer.fit(features["train"], features.get("validation", []))
    if not fit.completed:
        return {"run_id": run_id, "completed": False, "train": asdict(fit)}

    test_metrics, test_outputs = trainer.evaluate(features["test"])
    results = {
        "run_id": run_id,
        "completed": True,
        "test": test_metrics,
        "train": asdict(fit),
        "data": {split: len(examples) for split, examples in data.splits.items()},
    }
    model = _unsharded(trainer.model, method, task, data.label_names, run.is_main_process, device)
    if run.is_main_process:
        test_predictions = _record_predictions(run, data, task, model, test_outputs, device)
        test_metrics.update(test_predictions.metrics)
        plugins.hook.tunewright_eval_end(run=run, split="test", step=fit.steps, metrics=test_metrics)
        _save_model(run.folder, method, task, model, data.label_names)
        run.folder.record_hashes("model")  # what loading the run later verifies
        predictor = Predictor(task, model, data.label_names, cfg.trainer.eval_batch_size, device, trainer.dtype)
        evaluation = Evaluation(run, predictor, data, test_metrics, test_predictions.rows)
        results["audits"] = _run_audits(evaluation, governance["audits"], base_audits, plugins)
        results["monitors"] = {
            name: monitor.record_baseline(evaluation) for name, monitor in governance["monitors"].items()
        }
        run.folder.write_json("results.json", results)
        plugins.hook.tunewright_write_model_card(folder=run.folder.path)
        plugins.hook.tunewright_train_end(run=run, results=results)
    return results


def require_resumable(run: Run) -> None:
    """Refuse, before anything is written, to continue a run folder with anything but the
    config that started it: an existing run is resumed (or re-finished) by its own
    training config, never rewritten by another, and a folder of someone else's files is
    never written into. (Checkpoints are verified once, when the trainer resumes.)"""
    folder, cfg = run.folder, run.config
    refuse_foreign_folder(folder)
    if not folder.holds_run():
        return
    if cfg.trainer.resume == "never":
        raise ConfigError(
            f"trainer.resume=never, but {folder.path} already holds a run; choose a new paths.run_id "
            "(a run is never overwritten)"
        )
    changed = config_differences(folder.read_config(), cfg)
    if changed:
        raise ConfigError(
            f"paths.run_id={run.run_id}: {folder.path} holds a run trained with another config ({'; '.join(changed[:3])}); "
            "resume it with its own config, or choose a new paths.run_id"
        )


def refuse_foreign_folder(folder: RunFolder) -> None:
    foreign = folder.foreign_entries()
    if foreign:
        raise RunFolderError(
            f"{folder.path} holds files that are not a tunewright run ({', '.join(foreign[:3])}); "
            "choose another paths.run_id or paths.runs_dir"
        )


def _require_same_data(run: Run, data: DomainData) -> None:
    """A resumed run reads the data it started with (the manifest's hashes)."""
    manifest = run.folder.read_json("manifest.json")
    if not manifest or manifest.get("data_sources") == data.sources:
        return
    recorded = {source["path"]: source["sha256"] for source in manifest.get("data_sources", [])}
    changed = next((s["path"] for s in data.sources if recorded.get(s["path"]) != s["sha256"]), "the data sources")
    raise DataError(
        f"{changed}: changed since run {run.run_id} started (manifest.json records other contents); "
        "restore the data it started with, or train a new run"
    )


def _require_labelled_classes(data: DomainData) -> None:
    """A classifier trains on labels (or per-word tags) of two or more classes (a
    monitored batch may hold one, so the loaders do not check this)."""
    sources = ", ".join(source["path"] for source in data.sources) or "the data"
    train = data.splits["train"]
    if any(example.get("label") is None and "tags" not in example for example in train):
        raise DataError(
            f"{sources}: the training data has no labels (data.label_column=null is for tunewright monitor)"
        )
    present = {label for example in train for label in example.get("tags") or [example["label"]]}
    if len(present) < 2:
        only = ", ".join(repr(data.label_names[label]) for label in present) or "none"
        raise DataError(f"{sources}: the training labels hold a single class ({only}); a classifier needs two or more")


def _join_process_group(cfg: DictConfig, device: torch.device) -> DistributedContext:
    """The process group for ``trainer.strategy``; refuses a mismatch with the launcher."""
    strategy = cfg.trainer.strategy
    if strategy not in ("single", "ddp", "fsdp", "deepspeed"):
        raise ConfigError(f"trainer.strategy: {strategy!r} is not one of single, ddp, fsdp, deepspeed")
    if strategy == "deepspeed":
        zero_engine.require_deepspeed()  # before anything loads: without it, the install command
        return distributed.setup(device, group_of_one=True)
    if strategy == "single":
        if distributed.launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1:
            raise ConfigError(
                f"trainer.strategy=single, but torchrun started {os.environ['WORLD_SIZE']} processes; use trainer=ddp"
            )
        return DistributedContext()
    return distributed.setup(device)


def _unsharded(model, method, task, label_names: list[str], is_main_process: bool, device: torch.device):
    """The trained model as one ordinary module on rank 0, for export and governance.

    An FSDP-sharded model is gathered (every rank takes part) into a freshly built copy
    on ``device``, where the audits run it; any other model is returned as it is.
    """
    if not sharding.is_sharded(model):
        return model
    state = sharding.gather_full(model)
    if not is_main_process:
        return None
    copy = method.apply(load_base(task, method, label_names), task)
    task.keep_frozen(copy)
    copy.load_state_dict(state)
    return copy.to(device)


def load_base(task, method, label_names: list[str]):
    """The pre-trained model, loaded the way the method needs it (``load_options``:
    for example a 4-bit quantisation config)."""
    return task.load_pretrained(label_names, **method.load_options())


def governance_parts(
    run: Run, task, plugins, families: tuple[str, ...] = ("audits", "monitors")
) -> dict[str, dict[str, Any]]:
    """The configured audits and monitors (or those of ``families``), built (and so
    checked) before training; an edge export builds the audits again for its artifact.

    A part runs when it reads the task's inputs (its class's ``inputs``: an identity-term
    probe means nothing to an image classifier) and, unless its ``needs_probabilities``
    is False, when the task gives class probabilities (a language model or a tagger does
    not; a part that does without them gets the task's ``embed_inputs``). What is skipped
    is said; the release gate then needs an override.
    """
    parts, skipped = {}, []
    probabilities = task.class_probabilities
    selections = {"audits": run.config.audit, "monitors": run.config.monitor}
    for family in families:
        selection, registry = selections[family], plugins.registries[family]
        parts[family] = {}
        for name in selection.names:
            part_class = registry.get(name).factory  # checked when registered: the part's class
            usable = probabilities or not part_class.needs_probabilities
            if not usable or task.input_field not in part_class.inputs:
                skipped.append(name)
                continue
            parts[family][name] = registry.create(name, part_options(selection, registry, name), run)
    if skipped:
        reason = (
            "gives no class probabilities"
            if not probabilities
            else f"predicts from {NOUNS.get(task.input_field, task.input_field)}s"
        )
        print(f"tunewright: model={run.config.model.kind} {reason}; skipping {', '.join(skipped)}", file=sys.stderr)
    return parts


def _audit_base_model(run: Run, task, model, data: DomainData, audits: dict[str, Any], device) -> dict[str, Any] | None:
    """Every audit on the pre-trained model, before training, when its checkpoint has a
    head for exactly these labels; otherwise why that is not possible."""
    if not audits:
        return None
    own_labels = task.pretrained_label_names()
    if own_labels != data.label_names:
        predicts = f" (it predicts {', '.join(own_labels)})" if own_labels else ""
        return {
            "possible": False,
            "reason": f"its checkpoint has no head for the labels {', '.join(data.label_names)}{predicts}",
        }
    predictor = Predictor(
        task,
        model,
        data.label_names,
        run.config.trainer.eval_batch_size,
        device,
        autocast_dtype(run.config.trainer.precision, device),
    )
    test = data.splits["test"]
    logits = predictor.outputs([example[task.input_field] for example in test])[0]
    rows, _ = task.test_predictions(model, test, logits, data.label_names, device)
    evaluation = Evaluation(run, predictor, data, {}, rows)
    return {"possible": True, "results": {name: audit.audit(evaluation) for name, audit in audits.items()}}


def _run_audits(evaluation: Evaluation, audits: dict[str, Any], base: dict[str, Any] | None, plugins) -> dict[str, Any]:
    """Run each audit, ask for the release decision and fire ``tunewright_audit_completed``
    (the bias report's plugin writes ``reports/bias.{json,html}`` there); returns
    verdicts and the decision."""
    run = evaluation.run
    results = {name: audit.audit(evaluation) for name, audit in audits.items()}
    if not results:
        return {}
    decision = plugins.hook.tunewright_release_decision(run=run, results=results) or NO_DECISION
    plugins.hook.tunewright_audit_completed(run=run, results=results, base=base, decision=decision)
    return {"verdicts": {name: result["verdict"] for name, result in results.items()}, "release": decision}


@dataclass
class TestPredictions:
    rows: list[dict[str, Any]]
    metrics: dict[str, float]  # what only predictions can measure (a language model's exact match)


def _record_predictions(run: Run, data: DomainData, task, model, outputs, device) -> TestPredictions:
    """Write the test split's predictions, one JSON line per example, and return them."""
    rows, metrics = task.test_predictions(model, data.splits["test"], outputs, data.label_names, device)
    atomic_write_text(run.folder.path / PREDICTIONS_FILE, "".join(json.dumps(r) + "\n" for r in rows))
    return TestPredictions(rows, metrics)


def _save_model(folder: RunFolder, method, task, model, label_names: list[str]) -> None:
    """Write ``model/`` under a temporary name, then rename it into place."""
    with atomic_directory(folder.model_dir) as staging:
        method.save(model, staging)
        task.save_artifacts(staging, label_names)


def _library_versions() -> dict[str, str]:
    versions = {}
    for name in RECORDED_LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def _git_revision(directory: Path) -> dict[str, Any] | None:
    """The commit of the user's working directory and whether it has uncommitted
    changes; ``None`` outside a git checkout or without git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=directory, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def _write_manifest(
    run: Run, data: DomainData, task, precision: PrecisionChoice, deepspeed: zero_config.ResolvedConfig | None
) -> None:
    """What reproduces this run: config hash, data hashes, versions, seed, hardware, the
    precision it computed in and why, the DeepSpeed config it ran (kept whole in
    ``deepspeed.json``); and what the model card says of the task (its Hugging Face
    pipeline tag, its input). A resumed run keeps what later commands added (exports,
    retraining links, hashes)."""
    resolved = OmegaConf.to_yaml(run.config, resolve=True)
    facts = {
        "run_id": run.run_id,
        "config_sha256": hashlib.sha256(resolved.encode()).hexdigest(),
        "data_sources": data.sources,
        "task": {"kind": run.config.model.kind, "pipeline_tag": task.pipeline_tag, "input_field": task.input_field},
        "git": _git_revision(Path.cwd()),
        "seed": run.config.seed,
        "world_size": run.world_size,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "precision": {"name": precision.name, "device": precision.device, "reason": precision.reason},
        "libraries": _library_versions(),
    }
    if deepspeed is not None:
        run.folder.write_json("deepspeed.json", deepspeed.record())
        facts["deepspeed"] = {"origin": deepspeed.origin, "sha256": deepspeed.sha256, "stage": deepspeed.stage}
    run.folder.update_json("manifest.json", lambda manifest: manifest.update(facts))
