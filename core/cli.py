"""The ``tunewright`` command.

    tunewright train [hydra flags] [key=value ...]   fine-tune (Hydra-composed; -m sweeps)
    tunewright predict run=<folder> "text" [...]      labels with probabilities, JSON lines
    tunewright monitor run=<folder> data=<option> ... drift of a new batch against the run
    tunewright serve run=<folder> [run=...] [serve.port=8000 ...] [override="<reason>"]
                                                      an HTTP service; its traffic is logged for monitoring
    tunewright tune [key=value ...] [method=a,b] [tune.trials=20 tune.timeout=30m ...] [tune.study=<folder>]
                                                      a hyper-parameter search (Optuna); every trial a run folder
    tunewright card run=<folder>                      re-render MODEL_CARD.md from the run's records
    tunewright export run=<folder> [merged=true] [out=<dir>] [overwrite=true] [override="<reason>"]
                                                      a Hugging Face directory, if release is allowed
    tunewright export run=<folder> format=onnx [quantize=int8] [max_metric_drop=0.01] [accept_drop="<reason>"]
                                                      an edge artifact, checked on the test split before it ships
    tunewright studio [studio.port=7860 studio.workspace=studio ...]
                                                      a web app for all of the above, on 127.0.0.1
    tunewright plugins                                every plugin and what it registers

Config errors are reported as one line naming the key and the valid choices, before
any model is loaded; the exit status is 2 for them and 1 for other failures. Set
TUNEWRIGHT_DEBUG=1 to see the traceback behind any error. Commands that load a run
(predict, monitor, export) never run code shipped in it unless given trust_remote_code=true.
"""

from __future__ import annotations

import json
import sys
import traceback

from tunewright import __version__
from tunewright.errors import ConfigError, PluginError, TunewrightError, debugging, first_line

USAGE = __doc__.split("\n\n")[1]

# Hydra flags that take a value as the next argument.
HYDRA_FLAGS_WITH_VALUE = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}
HYDRA_HELP_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"}


def split_hydra_arguments(args: list[str]) -> tuple[list[str], list[str]]:
    """Separate Hydra's flags (``-m``, ``--cfg job``) from config overrides."""
    flags, overrides = [], []
    remaining = iter(args)
    for arg in remaining:
        if arg.startswith("-") and "=" not in arg:
            flags.append(arg)
            if arg in HYDRA_FLAGS_WITH_VALUE:
                flags.append(next(remaining, ""))
        else:
            overrides.append(arg)
    return flags, overrides


def train(args: list[str]) -> int:
    """Check every override combination, then hand the command line to Hydra."""
    import hydra

    from tunewright.config import check_overrides, hydra_overrides, validate
    from tunewright.plugin_manager import get_plugins

    plugins = get_plugins()
    flags, overrides = split_hydra_arguments(args)
    if {"--help", "-h"}.intersection(flags):
        print(train_help(plugins))
        return 0
    if not HYDRA_HELP_FLAGS.intersection(flags):
        check_overrides(overrides, plugins)
    sweep = Sweep(overrides) if {"-m", "--multirun"}.intersection(flags) else None

    @hydra.main(version_base=None, config_path="pkg://tunewright.conf", config_name="train")
    def train_job(cfg) -> None:
        from tunewright.pipeline import run_training

        if sweep is not None:
            sweep.start_job()
        try:
            validate(cfg, plugins)
            if needs_self_launch(cfg):
                sys.exit(launch_processes(cfg, flags, overrides))
            results = run_training(cfg, plugins)
        except (Exception, KeyboardInterrupt) as error:
            sys.exit(report(error))
        if is_main_process():
            print(summary(results, cfg))
            if sweep is not None:
                sweep.finish_job(cfg, results)

    # Hydra reads its command line from sys.argv; the caller's is put back afterwards
    # (tunewright.cli.main is also called from Python: the studio, tests, notebooks).
    callers_argv = sys.argv
    sys.argv = ["tunewright train", *flags, *hydra_overrides(plugins), *overrides]
    try:
        train_job()
    finally:
        sys.argv = callers_argv
    if sweep is not None and is_main_process():
        print(sweep.write_summary())
    return 0


class Sweep:
    """A ``-m`` sweep's record: a header before each job, a pointer to each job's run
    folder in its numbered sweep folder, and a table comparing the runs at the end
    (printed, and ``summary.md`` / ``summary.json`` in the sweep folder)."""

    def __init__(self, overrides: list[str]):
        from tunewright.config import expand_sweeps

        self.swept = [o.split("=", 1)[0] for o in overrides if len(list(expand_sweeps([o]))) > 1]
        self.jobs: list[dict] = []
        self.folder = None

    def _job(self):
        from hydra.core.hydra_config import HydraConfig

        job = HydraConfig.get()
        values = dict(o.split("=", 1) for o in job.overrides.task if "=" in o)
        return job, {key: values.get(key, "") for key in self.swept}

    def start_job(self) -> None:
        job, values = self._job()
        print(f"sweep job {job.job.num}: {' '.join(f'{k}={v}' for k, v in values.items())}")

    def finish_job(self, cfg, results: dict) -> None:
        from pathlib import Path

        from tunewright.run_folder import atomic_write_json

        job, values = self._job()
        self.folder = Path(job.sweep.dir)
        entry = {
            "job": job.job.num,
            "swept": values,
            "run_folder": str(Path(cfg.paths.runs_dir) / results["run_id"]),
            "completed": results.get("completed", True),
            "test": results.get("test") or {},
            "release_allowed": ((results.get("audits") or {}).get("release") or {}).get("allowed"),
        }
        self.jobs.append(entry)
        atomic_write_json(self.folder / str(job.job.num) / "run.json", entry)

    def write_summary(self) -> str:
        import json

        from tunewright.markdown import md_table
        from tunewright.run_folder import atomic_write_text

        metrics = sorted({name for job in self.jobs for name in job["test"]})
        rows = [
            [
                job["job"],
                *job["swept"].values(),
                *(f"{job['test'][m]:.4f}" if m in job["test"] else "" for m in metrics),
                "" if job["release_allowed"] is None else ("allowed" if job["release_allowed"] else "blocked"),
                job["run_folder"],
            ]
            for job in self.jobs
        ]
        table = md_table(["job", *self.swept, *(f"test {m}" for m in metrics), "release", "run folder"], rows)
        if self.folder is not None:
            atomic_write_text(self.folder / "summary.md", table + "\n")
            atomic_write_text(self.folder / "summary.json", json.dumps(self.jobs, indent=2) + "\n")
        return f"sweep of {len(self.jobs)} runs ({self.folder}):\n{table}"


def train_help(plugins) -> str:
    """``tunewright train --help``: the config groups and their options (Hydra's own help
    would list the schemas the options build on too)."""
    from tunewright.config import group_options

    lines = [
        "tunewright train [group=option ...] [key=value ...] [-m for sweeps]",
        "",
        "Config groups (group=option), and every key of the composed config is overridable (key=value):",
    ]
    lines += [f"  {group}: {', '.join(options)}" for group, options in group_options(plugins).items()]
    lines += [
        "",
        "tunewright train --cfg job [overrides]   print the composed config, run nothing",
        "tunewright plugins                       what each plugin registers",
        "tunewright train --hydra-help            Hydra's own flags",
        "",
        "Docs: docs/configuration.md, docs/methods.md (a page per model family and method).",
    ]
    return "\n".join(lines)


def needs_self_launch(cfg) -> bool:
    """``trainer=ddp trainer.nproc_per_node=N`` outside torchrun: start N processes here."""
    from tunewright.distributed import launched_by_torchrun

    return cfg.trainer.strategy != "single" and cfg.trainer.nproc_per_node > 1 and not launched_by_torchrun()


def launch_processes(cfg, flags: list[str], overrides: list[str]) -> int:
    """Run this same command in ``nproc_per_node`` processes through torch's launcher.

    The run id is chosen here and handed to every process, so all of them write to one
    run folder; a process that fails takes the others down (torchrun's behaviour).
    """
    import os

    from torch.distributed.run import get_args_parser, run

    from tunewright.run_folder import RUN_ID_ENV, new_run_id

    os.environ[RUN_ID_ENV] = cfg.paths.run_id or os.environ.get(RUN_ID_ENV) or new_run_id(cfg)
    args = get_args_parser().parse_args(
        [
            "--standalone",
            f"--nproc_per_node={cfg.trainer.nproc_per_node}",
            "-m",
            "tunewright",
            "train",
            *[f for f in flags if f not in ("-m", "--multirun")],
            *overrides,
        ]
    )
    try:
        run(args)
    except Exception as error:  # torchrun's ChildFailedError already printed each rank's failure
        print(f"tunewright: distributed run {os.environ[RUN_ID_ENV]} failed: {type(error).__name__}", file=sys.stderr)
        return 1
    return 0


def is_main_process() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def summary(results: dict, cfg) -> str:
    """The few lines a user reads after a run."""
    from pathlib import Path

    if not results.get("completed", True):
        return (
            f"stopped after step {results['train']['steps']} (trainer.stop_after_steps); "
            f"resume with the same command and paths.run_id={results['run_id']}"
        )
    test, fit = results["test"], results["train"]
    share = fit["trainable_parameters"] / max(fit["total_parameters"], 1)
    titles = {
        "f1_macro": "macro-F1",
        "token_accuracy": "token accuracy",
        "exact_match": "exact match",
        "rouge_l": "ROUGE-L",
        "chrf": "chrF",
        "entity_f1": "entity F1",
        "entity_precision": "entity precision",
        "entity_recall": "entity recall",
    }
    return "\n".join(
        [
            f"run folder:           {Path(cfg.paths.runs_dir) / results['run_id']}",
            f"trainable parameters: {fit['trainable_parameters']:,} of {fit['total_parameters']:,} ({share:.2%})",
            *(f"{'test ' + titles.get(name, name) + ':':<21} {value:.4f}" for name, value in test.items()),
            f"wall time:            {fit['wall_seconds']:.1f} s training, "
            + (
                f"{fit['tokens_per_second']:.0f} tokens/s"
                if fit["tokens_per_second"]
                else f"{fit['samples_per_second']:.1f} examples/s"
            ),
            *audit_lines(results.get("audits") or {}),
            *(
                [
                    "drift reference:      reports/drift_reference/ (check new data: tunewright monitor run=<folder> data=...)"
                ]
                if results.get("monitors")
                else []
            ),
            "model card:           MODEL_CARD.md",
        ]
    )


def audit_lines(audits: dict) -> list[str]:
    """The bias verdicts and release decision, when audits ran."""
    if not audits:
        return []
    verdicts = ", ".join(f"{name} {verdict.replace('_', ' ')}" for name, verdict in audits["verdicts"].items())
    release = audits["release"]
    lines = [
        f"bias audit:           {verdicts}; release {'allowed' if release['allowed'] else 'BLOCKED'} (reports/bias.html)"
    ]
    return lines + [f"  blocked by:         {reason}" for reason in release["reasons"] if not release["allowed"]]


def take_option(args: list[str], key: str) -> tuple[str | None, list[str]]:
    """The value of ``key=value`` among ``args`` (the last one given) and the other arguments."""
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"{key}=")]
    return (values[-1] if values else None), [a for a in args if not a.startswith(f"{key}=")]


def flag(command: str, key: str, value: str | None) -> bool:
    """A ``key=true|false`` option; absent is false."""
    if value is None:
        return False
    if value.lower() not in ("true", "false"):
        raise ConfigError(f"{command}: {key}={value!r} is not true or false")
    return value.lower() == "true"


def predict(args: list[str]) -> int:
    """``predict run=<folder> text ...``: one JSON line per text, or per file path for an
    image or audio model (``-`` reads stdin lines); ``image=<path> question ...`` for a
    vision-language model."""
    from pathlib import Path

    from tunewright.contracts import MEDIA_FIELDS
    from tunewright.edge_predictor import is_edge_export, open_export
    from tunewright.media import check_media

    folder, inputs = take_option(args, "run")
    trust, inputs = take_option(inputs, "trust_remote_code")
    image, inputs = take_option(inputs, "image")
    if folder is None:
        raise ConfigError("predict: run=<run folder> is required")
    if inputs == ["-"]:
        inputs = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not inputs:
        raise ConfigError("predict: give one or more texts (or image or audio paths) to classify, or - to read stdin")
    if is_edge_export(folder):  # an ONNX export: onnxruntime, no PyTorch
        predictor = open_export(folder)
        field = predictor.input_field
    else:
        from tunewright.predictor import load_run

        predictor = load_run(folder, flag("predict", "trust_remote_code", trust))
        field = predictor.task.input_field
    question = getattr(getattr(predictor, "task", None), "question_field", None)  # an ONNX export has no task
    if question is not None:
        # a vision-language model: one image, each argument a question about it
        if image is None:
            raise ConfigError('predict: this model answers questions about an image; give image=<path> "question"')
        check_media(field, Path(image), "predict image=")
        questions = [{field: str(Path(image).resolve()), question: asked} for asked in inputs]
        for asked, prediction in zip(inputs, predictor.predict(questions)):
            print(json.dumps({field: image, question: asked, **prediction}))
        return 0
    if image is not None:
        raise ConfigError("predict: image= goes with questions to a vision-language model; give the image path itself")
    if field in MEDIA_FIELDS:
        for number, path in enumerate(inputs, start=1):
            check_media(field, Path(path), f"predict input {number}")
    for value, prediction in zip(inputs, predictor.predict(inputs)):
        print(json.dumps({field: value, **prediction}))
    return 0


def monitor(args: list[str]) -> int:
    """``monitor run=<folder> data=... [monitor.window=500]``: drift reports and a verdict."""
    from tunewright.monitoring import monitor_run
    from tunewright.plugin_manager import get_plugins

    folder, overrides = take_option(args, "run")
    trust, overrides = take_option(overrides, "trust_remote_code")
    if folder is None:
        raise ConfigError("monitor: run=<run folder> is required")
    reports = monitor_run(folder, overrides, get_plugins(), flag("monitor", "trust_remote_code", trust))
    for report in reports:
        print(drift_summary(report, folder))
    return 0


def drift_summary(report: dict, folder: str) -> str:
    """What a user reads after ``tunewright monitor``."""
    from pathlib import Path

    verdict = {"drift": "DRIFT", "no_drift": "no drift", "insufficient_data": "insufficient data"}[report["status"]]
    lines = [
        f"batch {report['name']}: {report['rows']} rows in {len(report['windows'])} window(s)",
        f"verdict: {verdict} (severity {report['severity']}); retrain recommended: "
        f"{'yes' if report['retrain_recommended'] else 'no'}",
        *(f"  {reason}" for reason in report["reasons"]),
        *(f"  {note}" for note in report.get("notes", [])),
        f"report: {Path(folder) / report['files'][1]}",
    ]
    if report.get("retraining"):
        retrained = report["retraining"]
        lines.append(f"retrained: {Path(folder).parent / retrained['run_id']} (test {retrained['test']})")
    return "\n".join(lines)


def key_values(command: str, args: list[str], allowed: tuple[str, ...]) -> dict[str, str]:
    """``key=value`` arguments of a command; an unknown key or a bare word is an error."""
    options = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in allowed:
            raise ConfigError(f"{command}: {arg!r} is not one of {', '.join(f'{k}=...' for k in allowed)}")
        options[key] = value
    if "run" not in options:
        raise ConfigError(f"{command}: run=<run folder> is required")
    return options


def serve(args: list[str]) -> int:
    """``serve run=<folder> [run=<folder> ...] [serve.*=...] [override=<reason>] [trust_remote_code=true]``."""
    import importlib.util

    missing = [name for name in ("fastapi", "uvicorn", "prometheus_client") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"serve needs {', '.join(missing)}: pip install 'tunewright[serve]' (scripts/setup.sh does)")
    from tunewright.serving import serve as serve_runs

    folders = [arg.split("=", 1)[1] for arg in args if arg.startswith("run=")]
    override, rest = take_option([arg for arg in args if not arg.startswith("run=")], "override")
    trust, rest = take_option(rest, "trust_remote_code")
    if not folders:
        raise ConfigError("serve: run=<run folder> is required (give run= more than once to serve several)")
    stray = [arg for arg in rest if not arg.lstrip("+~").startswith("serve.")]
    if stray:
        raise ConfigError(f"serve: {stray[0]!r} is not run=..., override=..., trust_remote_code=... or serve.<key>=...")
    return serve_runs(folders, rest, override, flag("serve", "trust_remote_code", trust))


def card(args: list[str]) -> int:
    """``card run=<folder>``: re-render MODEL_CARD.md from the run's JSON records."""
    from pathlib import Path

    from tunewright.plugin_manager import get_plugins
    from tunewright.run_folder import RunFolder

    folder = RunFolder(key_values("card", args, ("run",))["run"])
    folder.read_config()  # a folder that holds no run is refused here
    card = get_plugins().hook.tunewright_write_model_card(folder=Path(folder.path))
    if card is None:
        raise TunewrightError(
            "card: no plugin writes model cards (is tunewright.governance.model_card in TUNEWRIGHT_DISABLE_PLUGINS?)"
        )
    print(card)
    return 0


def export(args: list[str]) -> int:
    """``export run=<folder> [merged=true] [out=<dir>] [override=<reason>] [format=onnx quantize=int8 ...]``."""
    from tunewright.export import export_run, vllm_command
    from tunewright.run_folder import RunFolder

    keys = ("run", "merged", "out", "overwrite", "override", "trust_remote_code")
    keys += ("format", "quantize", "max_metric_drop", "accept_drop")
    options = key_values("export", args, keys)
    merged, overwrite, trust = (
        flag("export", key, options.get(key)) for key in ("merged", "overwrite", "trust_remote_code")
    )
    if options.get("override"):
        print(f"tunewright: WARNING: exporting despite the release decision: {options['override']}", file=sys.stderr)
    target = export_run(
        options["run"],
        options.get("out"),
        merged,
        options.get("override"),
        overwrite,
        trust,
        format=options.get("format", "hf"),
        quantize=options.get("quantize"),
        max_metric_drop=share("export", "max_metric_drop", options.get("max_metric_drop", "0.01")),
        accept_drop=options.get("accept_drop"),
    )
    print(f"exported to {target}")
    if options.get("format") == "onnx":
        check = json.loads((target / "edge.json").read_text())["check"]
        print(
            f"checked on {check['test_rows']} test inputs: accuracy {check['pytorch']['accuracy']:.4f} (PyTorch) -> "
            f"{check['artifact']['accuracy']:.4f} (artifact), {check['size_bytes'] / 2**20:.1f} MiB, "
            f"batch-1 p50 {check['batch1_p50_ms']:.1f} ms"
        )
        return 0
    scale = vllm_command(RunFolder(options["run"]), target, merged)
    if scale is not None:
        print(f"to serve it at scale: {scale}")
    return 0


def tune(args: list[str]) -> int:
    """``tune [run keys ...] [method=a,b] [tune.*=...] [search.*=...]``: a hyper-parameter search."""
    from tunewright.plugin_manager import get_plugins
    from tunewright.tuning import tune as run_tune

    flags, overrides = split_hydra_arguments(args)
    if flags:
        raise ConfigError(f"tune: {flags[0]} is not an option of tune; list choices as method=lora,ia3")
    return run_tune(overrides, get_plugins())


def share(command: str, key: str, value: str) -> float:
    """A ``key=value`` option that is a share between 0 and 1."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number <= 1:
        raise ConfigError(f"{command}: {key}={value!r}: give a share between 0 and 1 (0.01 is one point)")
    return number


def studio(args: list[str]) -> int:
    """``studio [studio.*=...]``: the web app."""
    from tunewright.studio import run_studio

    stray = [arg for arg in args if not arg.lstrip("+~").startswith("studio.")]
    if stray:
        raise ConfigError(
            f"studio: {stray[0]!r} is not studio.<key>=... (studio.host, studio.port, studio.workspace ...)"
        )
    return run_studio(args)


def plugins_command(args: list[str]) -> int:
    """List every plugin, where it came from and what it registers."""
    from tunewright.plugin_manager import get_plugins

    for info in get_plugins().infos.values():
        print(f"{info.name}  [{info.source.removeprefix('distribution ')}]")
        for family, names in info.registers.items():
            print(f"    {family}: {', '.join(names)}")
        if info.problem:
            print(f"    LEFT OUT: {info.problem}")
        elif not info.registers:
            print("    (hooks only)")
    return 0


COMMANDS = {
    "train": train,
    "predict": predict,
    "monitor": monitor,
    "serve": serve,
    "tune": tune,
    "card": card,
    "export": export,
    "studio": studio,
    "plugins": plugins_command,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"tunewright {__version__}")
        return 0
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"tunewright: unknown command {argv[0]!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        return command(argv[1:])
    except PluginError as error:
        traceback.print_exception(error.__cause__ or error, file=sys.stderr)
        print(f"tunewright: {error}", file=sys.stderr)
        return 1
    except (Exception, KeyboardInterrupt) as error:
        return report(error)


def report(error: BaseException) -> int:
    """Print one line for ``error`` (its traceback first under ``TUNEWRIGHT_DEBUG=1``)
    and return the exit status: 2 for config errors, 130 for an interrupt, 1 otherwise.

    tunewright's own errors and the operating system's (a full disk, a missing
    permission) say what to do; anything else is a fault in tunewright or a plugin,
    named by its type.
    """
    if debugging():
        traceback.print_exception(error, file=sys.stderr)
    if isinstance(error, TunewrightError):
        message = str(error)
    elif isinstance(error, OSError):
        message = os_error_message(error)
    elif isinstance(error, KeyboardInterrupt):
        message = "interrupted; run the same command again to resume a training run from its last checkpoint"
    else:
        message = (
            f"internal error: {type(error).__name__}: {first_line(error)} (set TUNEWRIGHT_DEBUG=1 for the traceback)"
        )
    print(f"tunewright: {message}", file=sys.stderr)
    return 2 if isinstance(error, ConfigError) else 130 if isinstance(error, KeyboardInterrupt) else 1


def os_error_message(error: OSError) -> str:
    """An operating-system error as one line: what failed, where, and what to do."""
    import errno

    where = f"{error.filename}: " if error.filename else ""
    advice = {
        errno.ENOSPC: "the disk is full; free space (or point paths.runs_dir elsewhere) and run the command again: "
        "files written before are intact",
        errno.EDQUOT: "the disk quota is exhausted; free space and run the command again",
        errno.EFBIG: "the file-size limit (ulimit -f) was reached; raise it and run the command again",
        errno.EACCES: "permission denied; choose a folder you can write to",
        errno.EROFS: "the file system is read-only; choose another folder",
        errno.ENOENT: "no such file or directory",
    }.get(error.errno, error.strerror or str(error))
    return f"{where}{advice} (set TUNEWRIGHT_DEBUG=1 for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
