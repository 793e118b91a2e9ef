"""``tunewright tune [run keys ...] [tune.*=...] [search.*=...]``: a hyper-parameter search.

Optuna underneath, ask and tell. Each trial composes the normal run config with the
trial's values as overrides and trains a normal run folder, ``<study>/trials/trial-<n>``
(audits, drift reference, model card and all), so any trial can be predicted, served
or exported like any run. The trainer reports each validation evaluation through the
``tunewright_eval_end`` hook; a pruner stops a trial whose metric lags, and the trial's
manifest says so and at which step. The study lives in ``<study>/study.journal``
(Optuna's journal file): a killed study resumes with ``tune.study=<folder>``, finished
trials are never rerun, and a trial that was cut off is retried in its own run folder,
where the trainer resumes from its last checkpoint. After every trial the study's
report is rewritten (:mod:`.study_report`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from secrets import token_hex
from typing import Any

from tunewright import hookimpl
from tunewright.distributed import DistributedContext, broadcast_object, launched_by_torchrun, setup, teardown
from tunewright.errors import ConfigError, TunewrightError, first_line
from tunewright.precision import pick_device
from tunewright.run_folder import RunFolder, atomic_write_json
from tunewright.search_space import Param, check_space, read_space, trial_overrides

STUDY_FILE = "study.journal"
COMMAND_FILE = "command.json"  # the command line that started the study; resume reads it
TRIALS_DIR = "trials"
STUDY_NAME = "tunewright"
SINGLE = DistributedContext()  # a study in one process


def study_of(run_folder: Path) -> Path | None:
    """The study folder a run folder is a trial of (``<study>/trials/<run>``), or ``None``;
    a tracker groups a study's trials by it."""
    study = run_folder.parent.parent
    return study if run_folder.parent.name == TRIALS_DIR and (study / COMMAND_FILE).is_file() else None


OBJECTIVE = re.compile(r"(validation|audit)\.([A-Za-z0-9_]+):(max|min)")
RESUMABLE = ("tune.study", "tune.trials", "tune.timeout", "tune.promote")  # what a resumed study may change


@dataclass(frozen=True)
class Objective:
    source: str  # validation or audit
    metric: str
    direction: str  # maximize or minimize

    @property
    def name(self) -> str:
        return f"{self.source}.{self.metric}"


def parse_objectives(specs: list[str]) -> list[Objective]:
    if not specs:
        raise ConfigError("tune.objectives: name at least one, e.g. ['validation.accuracy:max']")
    objectives = []
    for spec in specs:
        match = OBJECTIVE.fullmatch(str(spec))
        if not match:
            raise ConfigError(
                f"tune.objectives: {spec!r} is not '<source>.<metric>:max|min' with source validation or audit "
                "(validation.f1_macro:max, audit.worst_limit_use:min); test metrics are reported, never optimised"
            )
        source, metric, way = match.groups()
        if source == "audit" and metric != "worst_limit_use":
            raise ConfigError(f"tune.objectives: {spec!r}: the audit objective is audit.worst_limit_use")
        objectives.append(Objective(source, metric, "maximize" if way == "max" else "minimize"))
    return objectives


def parse_timeout(value: str | None) -> float | None:
    """Seconds from ``30``, ``90s``, ``30m`` or ``2h``."""
    if value is None:
        return None
    text = str(value)
    scale = {"s": 1, "m": 60, "h": 3600}.get(text[-1], 1)
    return float(text.rstrip("smh")) * scale


class TrialPruned(TunewrightError):
    """The pruner stopped the trial at a validation evaluation."""

    def __init__(self, step: int, value: float):
        super().__init__(f"pruned at step {step} (validation value {value:.4f})")
        self.step, self.value = step, value


class TrialReporter:
    """A plugin registered for one trial: it keeps the trial's validation evaluations and
    audit results, and reports the pruning metric to the trial at each evaluation."""

    def __init__(self, trial, prune_on: Objective | None):
        self.trial = trial
        self.prune_on = prune_on
        self.evaluations: dict[int, dict[str, float]] = {}
        self.audits: dict[str, Any] | None = None

    @hookimpl
    def tunewright_eval_end(self, run, split, step, metrics):
        if split != "validation":
            return
        self.evaluations[step] = dict(metrics)
        if self.prune_on is None:
            return
        value = metric_value(metrics, self.prune_on.metric)
        self.trial.report(value, step)
        if self.trial.should_prune():
            raise TrialPruned(step, value)

    @hookimpl
    def tunewright_audit_completed(self, run, results, base, decision):
        self.audits = results


def metric_value(metrics: dict[str, float], name: str) -> float:
    if name not in metrics:
        raise ConfigError(f"tune.objectives: validation.{name} is not measured; this task gives {', '.join(metrics)}")
    return float(metrics[name])


def worst_limit_use(audits: dict[str, Any] | None) -> float:
    """How close the bias audits' closest check comes to its limit: ``value / max`` for
    an upper limit, ``min / value`` for a lower one (the shape governance/results.py
    gives each check); 1 is at the limit, above it breaks it."""
    uses = []
    for result in (audits or {}).values():
        for check in result.get("checks") or []:
            value, limits = check.get("value"), check.get("limits") or {}
            if value is None:
                continue
            if limits.get("max"):
                uses.append(float(value) / float(limits["max"]))
            if limits.get("min") is not None and value > 0:
                uses.append(float(limits["min"]) / float(value))
    if not uses:
        raise ConfigError("tune.objectives: audit.worst_limit_use needs audits with limits (audit=none runs none)")
    return max(uses)


@dataclass
class Study:
    """An Optuna study in its folder, with the command line it searches around."""

    folder: Path
    base: list[str]  # the run's own overrides (data=, model=, trainer.* ...)
    settings: Any  # the composed tune node
    spaces: dict[str, list[Param]]
    objectives: list[Objective]
    optuna_study: Any


def open_study(overrides: list[str], plugins) -> Study:
    """A new study, or the one ``tune.study`` names (resumed with its own command line)."""
    from tunewright.config import compose_config, expand_sweeps

    given = next((o.split("=", 1)[1] for o in overrides if o.startswith("tune.study=")), None)
    if given:
        overrides = _resumed(Path(given), overrides)
    study_keys = [o for o in overrides if o.split("=", 1)[0].split(".")[0].lstrip("+~") in ("tune", "search")]
    run_base = [o for o in overrides if o not in study_keys and not o.startswith("method=")]
    for combination in expand_sweeps(run_base):  # a study searches around one run config
        if combination != run_base:
            raise ConfigError("tune: only method= may list several values (the method is then searched)")
    listed = [o.split("=", 1)[1] for o in overrides if o.startswith("method=")]
    first = compose_config([*run_base, *(f"method={m}" for m in listed[-1:] if "," not in m)], plugins)
    methods = [m.strip() for m in listed[-1].split(",") if m.strip()] if listed else [first.method.kind]
    if first.trainer.strategy != "single" and first.trainer.nproc_per_node > 1 and not launched_by_torchrun():
        raise ConfigError(
            f"tune: trainer.nproc_per_node={first.trainer.nproc_per_node}: a study is launched on every rank "
            f"at once: torchrun --nproc_per_node {first.trainer.nproc_per_node} -m tunewright tune ..."
        )
    settings, spaces = _spaces(methods, study_keys, plugins)
    if not settings.trials and settings.timeout is None:
        raise ConfigError("tune: give tune.trials or tune.timeout (tune.trials=0 with no timeout would never end)")
    objectives = parse_objectives(list(settings.objectives))
    if any(o.source == "audit" for o in objectives) and not first.audit.names:
        raise ConfigError("tune.objectives: audit.worst_limit_use needs audits; this run config has audit=none")
    check_space(spaces, run_base, lambda extra: compose_config(extra, plugins))
    stamp = f"tune-{time.strftime('%Y%m%d-%H%M%S')}-{token_hex(3)}"
    folder = Path(given) if given else Path(first.paths.runs_dir) / stamp
    folder.mkdir(parents=True, exist_ok=True)
    if not given:
        atomic_write_json(folder / COMMAND_FILE, {"overrides": overrides})
    return Study(folder, run_base, settings, spaces, objectives, _optuna_study(folder, settings, objectives))


def _resumed(folder: Path, overrides: list[str]) -> list[str]:
    """The study's own command line, with what a resume may change."""
    command = _read_command(folder)
    changed = [o for o in overrides if o.split("=", 1)[0] not in RESUMABLE]
    if changed:
        raise ConfigError(
            f"tune.study={folder}: a study keeps its space and data; only {', '.join(RESUMABLE)} may be given "
            f"when resuming (got {changed[0]}); start a new study for another search"
        )
    return [*command["overrides"], *overrides]


def _spaces(methods: list[str], study_keys: list[str], plugins) -> tuple[Any, dict[str, list[Param]]]:
    """The composed ``tune`` node, and each method's space (``search/<method>.yaml``, or
    the one ``search=`` names for a single method), with the command line's changes."""
    from tunewright.config import compose_study_config

    named = [o for o in study_keys if o.startswith("search=")]
    if named and len(methods) > 1:
        raise ConfigError("search=: with several methods each searches its own space (search/<method>.yaml)")
    changes = [o for o in study_keys if not o.startswith("search=")]
    spaces, node = {}, None
    for method in methods:
        node = compose_study_config([*(named or [f"search={method}"]), *changes], plugins)
        spaces[method] = read_space(node.search.params, method if len(methods) > 1 else None)
    return node.tune, spaces


def _read_command(folder: Path) -> dict[str, Any]:
    path = folder / COMMAND_FILE
    if not (folder / STUDY_FILE).is_file() or not path.is_file():
        raise ConfigError(f"tune.study={folder}: not a study folder (no {STUDY_FILE} and {COMMAND_FILE})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ConfigError(f"{path}: not valid JSON ({first_line(error)})") from None


def _optuna_study(folder: Path, settings, objectives: list[Objective]):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(folder / STUDY_FILE)))
    existing = 0
    if any(s.study_name == STUDY_NAME for s in storage.get_all_studies()):
        existing = len(optuna.load_study(study_name=STUDY_NAME, storage=storage).trials)
    seed = settings.seed + existing  # a resumed study draws anew, not the first trials' values again
    constraints = _constraints if settings.constraint == "release" else None
    if settings.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=settings.startup_trials, constraints_func=constraints
        )
    pruner = {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=settings.startup_trials),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1),
        "none": optuna.pruners.NopPruner,
    }[settings.pruner]()
    return optuna.create_study(
        study_name=STUDY_NAME,
        storage=storage,
        load_if_exists=True,
        directions=[o.direction for o in objectives],
        sampler=sampler,
        pruner=pruner,
    )


def _constraints(trial) -> list[float]:
    """Optuna's feasibility: <= 0 is allowed; a trial whose release was not allowed is 1."""
    return [trial.user_attrs.get("release_blocked", 0.0)]


def run_study(study: Study, plugins, say: Callable[[str], None] = print, context: DistributedContext = SINGLE) -> None:
    """Trials until ``tune.trials`` are done or ``tune.timeout`` has passed. Under torchrun
    this runs on rank 0, which sends each trial's config to the other ranks
    (:func:`follow_trials`) so that every rank trains it."""
    from optuna.trial import TrialState

    from tunewright.study_report import write_report

    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    _retry_cut_off(study.optuna_study)
    started, budget = time.monotonic(), parse_timeout(study.settings.timeout)
    prune_on = study.objectives[0] if len(study.objectives) == 1 and study.settings.pruner != "none" else None
    if len(study.objectives) > 1 and study.settings.pruner != "none":
        say("tunewright tune: several objectives: Optuna prunes single-objective studies only, so no trial is pruned")
    while True:
        done = [t for t in study.optuna_study.trials if t.state in finished]
        if study.settings.trials and len(done) >= study.settings.trials:
            break
        if budget is not None and time.monotonic() - started >= budget:
            say(f"tunewright tune: tune.timeout={study.settings.timeout} reached")
            break
        row = _run_trial(study, prune_on, plugins, context)
        say(f"trial {row['number']}: {row['state']} {row['summary']}")
        write_report(study)
    write_report(study)


def _retry_cut_off(optuna_study) -> None:
    """A trial left RUNNING by a killed study fails, and its values are queued again for
    its own run folder (where training resumes from the last checkpoint)."""
    from optuna.trial import TrialState

    for trial in optuna_study.trials:
        if trial.state == TrialState.RUNNING:
            optuna_study.tell(trial.number, state=TrialState.FAIL)
            optuna_study.enqueue_trial(
                trial.params, user_attrs={"run_id": trial.user_attrs.get("run_id"), "retry_of": trial.number}
            )


def _run_trial(study: Study, prune_on: Objective | None, plugins, context: DistributedContext) -> dict[str, Any]:
    from optuna.trial import TrialState

    from tunewright.config import compose_config
    from tunewright.pipeline import run_training

    trial = study.optuna_study.ask()
    run_id = trial.user_attrs.get("run_id") or f"trial-{trial.number:04d}"
    trial.set_user_attr("run_id", run_id)
    method, values, drawn = trial_overrides(trial, study.spaces)
    trials_dir = study.folder / TRIALS_DIR
    overrides = [*study.base, *values, f"paths.runs_dir={trials_dir}", f"paths.run_id={run_id}"]
    cfg = compose_config(broadcast_object(overrides, context), plugins)  # every rank trains this trial
    reporter = TrialReporter(trial, prune_on)
    plugins.manager.register(reporter, name=f"tunewright-tune-trial-{trial.number}")
    row = {"number": trial.number, "run_id": run_id, "method": method, "params": drawn}
    try:
        results = run_training(cfg, plugins)
        objective_values = [_objective_value(o, reporter, results) for o in study.objectives]
    except TrialPruned as pruned:
        mark = {"step": pruned.step, "value": pruned.value, "metric": prune_on.name}
        folder = RunFolder(trials_dir / run_id)
        with folder.locked("tunewright tune", wait=True):
            folder.update_json("manifest.json", lambda manifest: manifest.update(pruned=mark))
        trial.set_user_attr("pruned_at_step", pruned.step)
        study.optuna_study.tell(trial, state=TrialState.PRUNED)
        return {**row, "state": "pruned", "summary": str(pruned)}
    except ConfigError:
        study.optuna_study.tell(trial, state=TrialState.FAIL)
        raise  # the same error would fail every trial
    except Exception as error:  # one trial's failure is recorded; the study goes on
        trial.set_user_attr("error", first_line(error))
        study.optuna_study.tell(trial, state=TrialState.FAIL)
        return {**row, "state": "failed", "summary": first_line(error)}
    finally:
        plugins.manager.unregister(reporter)
    release = (results.get("audits") or {}).get("release") or {}
    trial.set_user_attr("release_blocked", 0.0 if release.get("allowed", True) else 1.0)
    trial.set_user_attr("test", results.get("test"))
    study.optuna_study.tell(trial, objective_values)
    shown = ", ".join(f"{o.name} {v:.4f}" for o, v in zip(study.objectives, objective_values))
    return {**row, "state": "complete", "summary": shown}


def _objective_value(objective: Objective, reporter: TrialReporter, results: dict[str, Any]) -> float:
    if objective.source == "audit":
        return worst_limit_use(reporter.audits)
    if not reporter.evaluations:  # the trainer evaluates at least after the last step, given validation data
        raise ConfigError("tune: validation objectives need a validation split (data.validation_fraction > 0)")
    best_step = results["train"].get("best_step")
    chosen = reporter.evaluations.get(best_step) or reporter.evaluations[max(reporter.evaluations)]
    return metric_value(chosen, objective.metric)


def promote(study: Study, best: dict[str, Any]) -> None:
    """Name the recommended trial the study's result, in its manifest and in study.json."""
    folder = RunFolder(study.folder / TRIALS_DIR / best["run_id"])
    mark = {"study": str(study.folder), "trial": best["number"], "why": best["why"]}
    with folder.locked("tunewright tune", wait=True):
        folder.update_json("manifest.json", lambda manifest: manifest.update(promoted_by=mark))
    record = json.loads((study.folder / "study.json").read_text(encoding="utf-8"))
    atomic_write_json(study.folder / "study.json", {**record, "promoted": best["run_id"]})


def follow_trials(context: DistributedContext, plugins) -> None:
    """A rank other than 0 in a distributed study: train each trial rank 0 sends, until it
    sends ``None``. A trial rank 0 ends early (pruned) or that fails ends here too."""
    from tunewright.config import compose_config
    from tunewright.pipeline import run_training

    while (overrides := broadcast_object(None, context)) is not None:
        try:
            run_training(compose_config(overrides, plugins), plugins)
        except ConfigError:
            raise  # rank 0 meets the same error, and the study ends there too
        except Exception:  # rank 0 records how the trial ended; the study goes on
            continue


def tune(overrides: list[str], plugins) -> int:
    """The ``tunewright tune`` command; under torchrun, on every rank (one process group
    for the whole study, every trial trained by all ranks)."""
    given = next((o.split("=", 1)[1] for o in overrides if o.startswith("trainer.device=")), "auto")
    context, finished = setup(pick_device(given)), False
    try:
        if not context.is_main_process:
            follow_trials(context, plugins)
            finished = True
            return 0
        study = open_study(overrides, plugins)
        print(f"tunewright tune: study folder {study.folder}")
        run_study(study, plugins, context=context)
        broadcast_object(None, context)  # the other ranks' follow_trials ends
        finished = True
    finally:
        teardown(graceful=finished)
    from tunewright.study_report import recommendation, summary_table

    print(summary_table(study))
    best = recommendation(study)
    if best:
        print(f"recommended: {best['run_id']} ({best['why']})")
        if study.settings.promote:
            promote(study, best)
            print(f"promoted: {study.folder / TRIALS_DIR / best['run_id']} is the study's result")
    print(f"report: {study.folder / 'report.html'}; resume with tune.study={study.folder}")
    return 0
