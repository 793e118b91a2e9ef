"""The ``tunewright`` command.

    tunewright train [hydra flags] [key=value ...]   fine-tune (Hydra-composed; -m sweeps)
    tunewright predict run=<folder> "text" [...]      labels with probabilities, JSON lines
    tunewright monitor run=<folder> data=<option> ... drift of a new batch against the run
    tunewright card run=<folder>                      re-render MODEL_CARD.md from the run's records
    tunewright export run=<folder> [merged=true] [out=<dir>] [override="<reason>"]
                                                      a Hugging Face directory, if release is allowed
    tunewright plugins                                every plugin and what it registers

Config errors are reported as one line naming the key and the valid choices, before
any model is loaded; the exit status is 2 for them and 1 for other failures.
"""

from __future__ import annotations

import json
import sys
import traceback

from tunewright import __version__
from tunewright.errors import ConfigError, PluginError, TunewrightError

USAGE = __doc__.split("\n\n")[1]

# Hydra flags that take a value as the next argument.
HYDRA_FLAGS_WITH_VALUE = {
    "--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
    "--config-dir", "-cd", "--experimental-rerun",
}  # fmt: skip
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

    from tunewright.config import check_overrides, searchpath_override, validate
    from tunewright.plugin_manager import get_plugins

    plugins = get_plugins()
    flags, overrides = split_hydra_arguments(args)
    if {"--help", "-h"}.intersection(flags):
        print(train_help(plugins))
        return 0
    if not HYDRA_HELP_FLAGS.intersection(flags):
        check_overrides(overrides, plugins)

    @hydra.main(version_base=None, config_path="pkg://tunewright.conf", config_name="train")
    def train_job(cfg) -> None:
        from tunewright.pipeline import run_training

        try:
            validate(cfg, plugins)
            if needs_self_launch(cfg):
                sys.exit(launch_processes(cfg, flags, overrides))
            results = run_training(cfg, plugins)
        except TunewrightError as error:
            print(f"tunewright: {error}", file=sys.stderr)
            sys.exit(2 if isinstance(error, ConfigError) else 1)
        if is_main_process():
            print(summary(results, cfg))

    sys.argv = ["tunewright train", *flags, *searchpath_override(plugins), *overrides]
    train_job()
    return 0


def train_help(plugins) -> str:
    """``tunewright train --help``: the config groups and their options (Hydra's own help
    would list the schemas the options build on too)."""
    from tunewright.config import group_options

    lines = ["tunewright train [group=option ...] [key=value ...] [-m for sweeps]", "",
             "Config groups (group=option), and every key of the composed config is overridable (key=value):"]  # fmt: skip
    lines += [f"  {group}: {', '.join(options)}" for group, options in group_options(plugins).items()]
    lines += ["", "tunewright train --cfg job [overrides]   print the composed config, run nothing",
              "tunewright plugins                       what each plugin registers",
              "tunewright train --hydra-help            Hydra's own flags", "",
              "Docs: docs/configuration.md, docs/methods.md (a page per model family and method)."]  # fmt: skip
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
        ["--standalone", f"--nproc_per_node={cfg.trainer.nproc_per_node}", "-m", "tunewright", "train",
         *[f for f in flags if f not in ("-m", "--multirun")], *overrides]
    )  # fmt: skip
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
    titles = {"f1_macro": "macro-F1", "token_accuracy": "token accuracy", "exact_match": "exact match",
              "rouge_l": "ROUGE-L", "chrf": "chrF", "entity_f1": "entity F1", "entity_precision": "entity precision",
              "entity_recall": "entity recall"}  # fmt: skip
    return "\n".join(
        [
            f"run folder:           {Path(cfg.paths.runs_dir) / results['run_id']}",
            f"trainable parameters: {fit['trainable_parameters']:,} of {fit['total_parameters']:,} ({share:.2%})",
            *(f"{'test ' + titles.get(name, name) + ':':<21} {value:.4f}" for name, value in test.items()),
            f"wall time:            {fit['wall_seconds']:.1f} s training, "
            + (f"{fit['tokens_per_second']:.0f} tokens/s" if fit["tokens_per_second"] else f"{fit['samples_per_second']:.1f} examples/s"),
            *audit_lines(results.get("audits") or {}),
            *(["drift reference:      reports/drift_reference/ (check new data: tunewright monitor run=<folder> data=...)"]
              if results.get("monitors") else []),
            "model card:           MODEL_CARD.md",
        ]
    )


def audit_lines(audits: dict) -> list[str]:
    """The bias verdicts and release decision, when audits ran."""
    if not audits:
        return []
    verdicts = ", ".join(f"{name} {verdict}" for name, verdict in audits["verdicts"].items())
    release = "allowed" if audits["release"]["allowed"] else "BLOCKED"
    return [f"bias audit:           {verdicts}; release {release} (reports/bias.html)"]


def predict(args: list[str]) -> int:
    """``predict run=<folder> text ...``: one JSON line per text, or per image path for an
    image model (``-`` reads stdin lines)."""
    from pathlib import Path

    from tunewright.images import check_image
    from tunewright.predictor import load_run

    folder = next((a.split("=", 1)[1] for a in args if a.startswith("run=")), None)
    inputs = [a for a in args if not a.startswith("run=")]
    if folder is None:
        raise ConfigError("predict: run=<run folder> is required")
    if inputs == ["-"]:
        inputs = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not inputs:
        raise ConfigError("predict: give one or more texts (or image paths) to classify, or - to read stdin")
    predictor = load_run(folder)
    field = predictor.task.input_field
    if field == "image":
        for number, path in enumerate(inputs, start=1):
            check_image(Path(path), f"predict input {number}")
    for value, prediction in zip(inputs, predictor.predict(inputs)):
        print(json.dumps({field: value, **prediction}))
    return 0


def monitor(args: list[str]) -> int:
    """``monitor run=<folder> data=... [monitor.window=500]``: drift reports and a verdict."""
    from tunewright.monitoring import monitor_run
    from tunewright.plugin_manager import get_plugins

    folder = next((a.split("=", 1)[1] for a in args if a.startswith("run=")), None)
    if folder is None:
        raise ConfigError("monitor: run=<run folder> is required")
    reports = monitor_run(folder, [a for a in args if not a.startswith("run=")], get_plugins())
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


def card(args: list[str]) -> int:
    """``card run=<folder>``: re-render MODEL_CARD.md from the run's JSON records."""
    from tunewright.governance.model_card import write_model_card

    print(write_model_card(key_values("card", args, ("run",))["run"]))
    return 0


def export(args: list[str]) -> int:
    """``export run=<folder> [merged=true] [out=<dir>] [override=<reason>]``."""
    from tunewright.export import export_run

    options = key_values("export", args, ("run", "merged", "out", "override"))
    merged = options.get("merged", "false").lower()
    if merged not in ("true", "false"):
        raise ConfigError(f"export: merged={options['merged']!r} is not true or false")
    if options.get("override"):
        print(f"tunewright: WARNING: exporting despite the release decision: {options['override']}", file=sys.stderr)
    target = export_run(options["run"], options.get("out"), merged == "true", options.get("override"))
    print(f"exported to {target}")
    return 0


def plugins_command(args: list[str]) -> int:
    """List every plugin, where it came from and what it registers."""
    from tunewright.plugin_manager import get_plugins

    for info in get_plugins().infos.values():
        print(f"{info.name}  [{info.source}]")
        for family, names in info.registers.items():
            print(f"    {family}: {', '.join(names)}")
        if not info.registers:
            print("    (hooks only)")
    return 0


COMMANDS = {
    "train": train, "predict": predict, "monitor": monitor, "card": card, "export": export, "plugins": plugins_command,
}  # fmt: skip


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
    except TunewrightError as error:
        print(f"tunewright: {error}", file=sys.stderr)
        return 2 if isinstance(error, ConfigError) else 1


if __name__ == "__main__":
    sys.exit(main())
