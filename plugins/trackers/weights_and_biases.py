"""``tracker=wandb``: the run in Weights & Biases, online with credentials, offline without.

Rank 0 only (trackers are started there). The run's W&B name is the run folder's
name and its config the resolved Hydra config; training metrics are logged against
``global_step``; at the end the test metrics, data-card summary, audit verdicts and
release decision become summary fields, the audits' per-group results
``wandb.Table`` s, and ``model/`` plus the reports and model card artifacts
(aliases ``final``, and ``best`` when the best evaluated weights were exported).
``tunewright monitor`` resumes the same W&B run and logs each batch's drift layers.

W&B is a convenience, never a dependency of training: any error from it is reported
once and tracking continues in the run folder alone. With ``mode=auto`` and no API
key (``WANDB_API_KEY`` or ``wandb login``) it runs offline and says how to
``wandb sync``; ``tracker.wandb.mode=disabled`` turns it off.
"""

from __future__ import annotations

import netrc
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf

from tunewright import hookimpl
from tunewright.contracts import Tracker
from tunewright.governance.policy import limit_text
from tunewright.governance.results import upgrade_audit
from tunewright.schema import TrackerConfig, knob

RUN_RECORD = "wandb_run.json"  # the W&B run's id and where it lives, for later commands
MODES = ("auto", "online", "offline", "disabled")


@dataclass
class WandbConfig(TrackerConfig):
    project: str = "tunewright"
    entity: Optional[str] = None  # team or user; default: your W&B default entity
    mode: str = knob(
        "auto", choices=("auto", "online", "offline", "disabled")
    )  # auto: online with credentials, else offline
    group: Optional[str] = None  # default: the sweep's name under -m, the study's for a tune trial, else none
    tags: list[str] = field(default_factory=list)
    log_model: bool = True  # upload model/ as an artifact (large for method=full)
    dir: Optional[str] = None  # where W&B keeps its files; default: the run folder


def has_credentials() -> bool:
    """An API key in the environment or in ``~/.netrc`` (what ``wandb login`` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(cfg: WandbConfig) -> str:
    from tunewright.errors import ConfigError

    if cfg.mode not in MODES:
        raise ConfigError(f"tracker.wandb.mode: {cfg.mode!r} is not one of {', '.join(MODES)}")
    if cfg.mode != "auto":
        return cfg.mode
    return os.environ.get("WANDB_MODE") or ("online" if has_credentials() else "offline")


def study_group(run_folder: Path) -> str | None:
    """The trials of one ``tunewright tune`` study share a group."""
    from tunewright.tuning import study_of

    study = study_of(run_folder)
    return f"study-{study.name}" if study is not None else None


def sweep_group() -> str | None:
    """Under ``tunewright train -m`` every run of the sweep shares a group."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra = HydraConfig.get()
    except (ImportError, ValueError):
        return None
    return f"sweep-{Path(hydra.sweep.dir).name}" if hydra.mode == RunMode.MULTIRUN else None


class WandbTracker(Tracker):
    """Mirrors the run's lifecycle into one W&B run; every call is guarded."""

    def __init__(self, cfg: WandbConfig, run):
        self.cfg, self.folder = cfg, run.folder.path
        self.wandb_run = None
        self.mode = resolve_mode(cfg)
        if self.mode != "disabled":
            self._guard("start", self._start, run)

    # ------------------------------------------------------------------ safety

    def _guard(self, what: str, action, *args) -> None:
        """Run a W&B call; on any error, say so once and stop using W&B for this run."""
        if self.wandb_run is None and what != "start":
            return
        try:
            action(*args)
        except Exception as error:  # a tracker must never end a training run
            print(
                f"tunewright: W&B {what} failed ({type(error).__name__}: {error}); "
                "tracking continues in the run folder only",
                file=sys.stderr,
            )
            self.wandb_run = None

    def _start(self, run) -> None:
        import wandb

        previous = run.folder.read_json(RUN_RECORD)
        self.wandb_run = wandb.init(
            project=self.cfg.project,
            entity=self.cfg.entity,
            name=run.run_id,
            id=previous["id"] if previous else None,
            resume="allow" if previous else None,
            group=self.cfg.group or sweep_group() or study_group(run.folder.path),
            tags=list(self.cfg.tags),
            config=OmegaConf.to_container(run.config, resolve=True),
            dir=self.cfg.dir or str(self.folder),
            mode=self.mode,
        )
        for prefix in ("train", "validation", "test"):
            self.wandb_run.define_metric(f"{prefix}/*", step_metric="global_step")
        record = {"id": self.wandb_run.id, "project": self.cfg.project, "mode": self.mode, "dir": self.wandb_run.dir}
        run.folder.write_json(RUN_RECORD, record)
        if self.mode == "offline":
            print(
                f"tunewright: W&B runs offline; upload later with: wandb sync {Path(self.wandb_run.dir).parent}",
                file=sys.stderr,
            )

    # ------------------------------------------------------------------ lifecycle hooks

    @hookimpl
    def tunewright_train_step_end(self, run, step, metrics):
        self._guard("log", self._log, "train", step, metrics)

    @hookimpl
    def tunewright_eval_end(self, run, split, step, metrics):
        self._guard("log", self._log, split, step, metrics)

    def _log(self, prefix: str, step: int, metrics: dict[str, float]) -> None:
        self.wandb_run.log({**{f"{prefix}/{k}": v for k, v in metrics.items()}, "global_step": step})

    @hookimpl
    def tunewright_train_end(self, run, results):
        self._guard("summary", self._summarise, run, results)
        self._guard("artifact upload", self._log_artifacts, run)

    def _summarise(self, run, results: dict[str, Any]) -> None:
        import wandb

        summary = self.wandb_run.summary
        for name, value in (results.get("test") or {}).items():
            summary[f"test/{name}"] = value
        card = run.folder.read_json("data_card.json") or {}
        for split, composition in card.get("composition", {}).items():
            summary[f"data/{split}_rows"] = composition["rows"]
        summary["data/rows_dropped_by_cleaning"] = sum(s["rows_in"] - s["rows_out"] for s in card.get("cleaning", []))
        bias = run.folder.read_json("reports/bias.json")
        if bias is None:
            return
        summary["release/allowed"] = bias["release"]["allowed"]
        for name, audit in bias["audits"].items():
            summary[f"bias/{name}/verdict"] = audit["verdict"]
            for table, (columns, rows) in bias_tables(audit).items():
                if rows:
                    self.wandb_run.log({f"bias/{name}/{table}": wandb.Table(columns=columns, data=rows)})

    def _log_artifacts(self, run) -> None:
        import wandb

        if self.cfg.log_model and run.folder.model_dir.is_dir():
            model = wandb.Artifact(f"model-{run.run_id}", type="model", metadata={"method": run.config.method.kind})
            model.add_dir(str(run.folder.model_dir))
            aliases = ["final", "best"] if run.config.trainer.select_best else ["final"]
            self.wandb_run.log_artifact(model, aliases=aliases)
        reports = wandb.Artifact(f"governance-{run.run_id}", type="governance")
        for name in ("MODEL_CARD.md", "data_card.json", "data_card.md", "manifest.json"):
            if (self.folder / name).is_file():
                reports.add_file(str(self.folder / name))
        if (self.folder / "reports").is_dir():
            reports.add_dir(str(self.folder / "reports"), name="reports")
        self.wandb_run.log_artifact(reports, aliases=["final"])

    @hookimpl
    def tunewright_monitor_completed(self, run, report):
        self._guard("log", self._log_drift, report)

    def _log_drift(self, report: dict[str, Any]) -> None:
        import wandb

        prefix = f"drift/{report['name']}"
        summary = self.wandb_run.summary
        summary[f"{prefix}/status"] = report["status"]
        summary[f"{prefix}/severity"] = report["severity"]
        summary[f"{prefix}/retrain_recommended"] = report["retrain_recommended"]
        rows = [
            [w["index"], layer, entry.get("score"), entry.get("threshold"), entry["drifted"]]
            for w in report["windows"]
            for layer, entry in (w.get("layers") or {}).items()
        ]
        if rows:
            self.wandb_run.log(
                {prefix: wandb.Table(columns=["window", "layer", "score", "threshold", "drifted"], data=rows)}
            )

    @hookimpl
    def tunewright_run_error(self, run, error):
        self._finish(exit_code=1)

    def close(self) -> None:
        """End the W&B run (uploading, or writing the offline files)."""
        self._finish(exit_code=0)

    def _finish(self, exit_code: int) -> None:
        self._guard("finish", lambda: self.wandb_run.finish(exit_code=exit_code))
        self.wandb_run = None


def bias_tables(audit: dict[str, Any]) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """One audit's per-group rows and its checks, as table columns and rows, in the
    words of ``bias.html`` (any audit: they come from the shared result shape)."""
    audit = upgrade_audit("", audit)
    keys = [key for key, _ in audit["columns"]]
    groups = (
        ["subject", "group", "size", *keys],
        [[g.get("subject"), g["group"], g.get("size"), *(g.get(k) for k in keys)] for g in audit["groups"]],
    )
    checks = (
        ["subject", "check", "value", "interval", "limit", "p_value", "verdict", "meaning", "reason"],
        [
            [
                c["subject"],
                c["check"],
                c["value"],
                str(c["interval"]) if c["interval"] else None,
                limit_text(c["limits"]),
                c["p_value"],
                c["verdict"],
                c["meaning"],
                c["reason"],
            ]
            for c in audit["checks"]
        ],
    )
    return {"groups": groups, "checks": checks}


@hookimpl
def tunewright_register_trackers(registry):
    registry.add(
        "wandb",
        WandbTracker,
        schema=WandbConfig,
        description="Weights & Biases: metrics, config, bias tables, artifacts (offline without credentials)",
    )
