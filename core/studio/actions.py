"""What each button of the studio does, without the browser: the web page
(:mod:`.app`) only passes form values here and shows what comes back, so every
behaviour is unit-tested in plain Python and the browser tests stay few."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewright.errors import ConfigError
from tunewright.studio import data_check, views
from tunewright.studio.forms import PACK_PREFIX, UPLOAD_PREFIX, TrainForm, command_line
from tunewright.studio.jobs import Jobs
from tunewright.studio.workspace import Workspace

# Dataset options that read a file the user names: offered through uploads, not as packs.
FILE_READERS = {"csv", "jsonl", "parquet", "image_folder", "hf_dataset", "served"}
EXPORT_FORMATS = {
    "Hugging Face directory": [],
    "Hugging Face directory, merged": ["merged=true"],
    "ONNX": ["format=onnx"],
    "ONNX int8": ["format=onnx", "quantize=int8"],
}


@dataclass
class Choice:
    """A drop-down entry: what is shown and the option it stands for."""

    label: str
    value: str


def _described(option: str, text: str) -> str:
    return f"{option}: {text}" if text else option


def _default(spec) -> str:
    import dataclasses

    value = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def batch_columns(run: Path, available: list[str]) -> list[str]:
    """The run's own column settings for a batch with ``available`` columns: the text
    columns as the run read them, its label column if the batch has labels (else none:
    drift is judged without accuracy), and the sensitive columns the batch carries."""
    from omegaconf import OmegaConf

    data = OmegaConf.load(run / "config.yaml").data
    out = [
        f"data.{key}={data[key]}"
        for key in ("text_column", "text_pair_column", "image_column")
        if data.get(key) not in (None, "")
    ]
    label = data.get("label_column")
    out.append(f"data.label_column={label if label in available else 'null'}")
    sensitive = [column for column in data.get("sensitive_columns") or [] if column in available]
    if sensitive:
        out.append(f"data.sensitive_columns=[{','.join(sensitive)}]")
    return out


def option_file_comment(group: str, option: str) -> str:
    """The first comment line of tunewright's own ``conf/<group>/<option>.yaml``."""
    from importlib.resources import files

    path = files("tunewright.conf") / group / f"{option}.yaml"
    try:
        first = path.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError):
        return ""
    return first.lstrip("# ").rstrip(":") if first.startswith("#") else ""


class Studio:
    """One workspace's studio: its uploads, its commands and their run folders."""

    def __init__(self, workspace: Workspace, max_upload_mb: float, plugins=None):
        from tunewright.plugin_manager import get_plugins

        self.workspace = workspace.create()
        self.max_upload_mb = max_upload_mb
        self.plugins = plugins or get_plugins()
        self.jobs = Jobs(workspace.logs)
        self._compose_lock = threading.Lock()  # Hydra's global state takes one composition at a time
        self._predictors: dict[str, Any] = {}

    # ------------------------------------------------------------------ registries

    def choices(self, group: str) -> list[Choice]:
        """The options of config group ``group`` (``model``, ``method``), third-party
        plugins' included, each with the first line of what its config file or its
        registration says it is."""
        from tunewright.config import group_options

        return [
            Choice(_described(option, self._option_help(group, option)), option)
            for option in group_options(self.plugins)[group]
        ]

    def _option_help(self, group: str, option: str) -> str:
        family = {"model": "models", "method": "methods", "data": "datasets"}[group]
        registry = self.plugins.registries[family]
        if option in registry and registry.get(option).description:
            return registry.get(option).description
        return option_file_comment(group, option)

    def method_knobs(self, method: str) -> str:
        """The chosen method's own knobs as markdown: each key, its default and what its
        schema's comment says it costs (set them under More overrides)."""
        import dataclasses

        from tunewright.markdown import md_code, md_text
        from tunewright.schema_help import field_comments

        registry = self.plugins.registries["methods"]
        if method not in registry:
            return ""
        schema = registry.get(method).schema
        comments = field_comments(schema)
        lines = [
            f"- {md_code(f'method.{spec.name}={_default(spec)}')}: {md_text(comments[spec.name])}"
            for spec in dataclasses.fields(schema)
            if spec.name in comments
        ]
        return "\n".join([f"{md_text(method)}'s own knobs (set under More overrides):", *lines]) if lines else ""

    def data_choices(self) -> list[str]:
        """Uploaded files, newest first, then the bundled packs."""
        from tunewright.config import group_options

        packs = [option for option in group_options(self.plugins)["data"] if option not in FILE_READERS]
        return [UPLOAD_PREFIX + name for name in self.workspace.uploaded()] + [PACK_PREFIX + name for name in packs]

    # ------------------------------------------------------------------ data

    def upload(self, received: Path, original_name: str) -> str:
        """Store an upload; returns its drop-down entry."""
        stored = self.workspace.store_upload(received, original_name, self.max_upload_mb)
        return UPLOAD_PREFIX + stored.name

    def preview(self, data: str) -> data_check.Preview | None:
        """The uploaded file's first rows (None for a pack: it has no columns to map)."""
        if not data.startswith(UPLOAD_PREFIX):
            return None
        return data_check.preview(self.workspace.upload_path(data.removeprefix(UPLOAD_PREFIX)))

    def data_card(self, form: TrainForm) -> str:
        """The data card the run would write, as markdown."""
        overrides = form.overrides(self.workspace, "studio-data-check")
        with self._compose_lock:
            return data_check.data_card(overrides, self.plugins)[1]

    # ------------------------------------------------------------------ train

    def command(self, form: TrainForm, run_id: str) -> str:
        return command_line("train", form.overrides(self.workspace, run_id))

    def start_training(self, form: TrainForm, run_id: str | None = None) -> str:
        """Check the overrides as ``tunewright train`` would, then start it; returns the run id."""
        from tunewright.config import check_overrides

        run_id = run_id or time.strftime("studio-%Y%m%d-%H%M%S")
        overrides = form.overrides(self.workspace, run_id)
        with self._compose_lock:
            check_overrides(overrides, self.plugins)
        self.jobs.start(run_id, "train", overrides)
        return run_id

    def stop(self, job: str) -> bool:
        return self.jobs.stop(job)

    def resume(self, run_id: str) -> str:
        """Start run ``run_id``'s training command again: it goes on from its newest checkpoint."""
        recorded = self.jobs.recorded_args(run_id)
        if recorded is None or recorded[0] != "train":
            raise ConfigError(f"{run_id}: the studio did not start this run; resume it with its own command")
        self.jobs.start(run_id, *recorded)
        return run_id

    def progress(self, run_id: str) -> views.Progress:
        job = self.jobs.get(run_id)
        return views.progress(self.run_path(run_id), bool(job and job.running), bool(job and job.failed))

    def elapsed(self, job_name: str) -> float | None:
        job = self.jobs.get(job_name)
        return time.time() - job.started if job else None

    # ------------------------------------------------------------------ results

    def run_path(self, run_id: str) -> Path:
        path = self.workspace.runs / run_id
        if Path(run_id).name != run_id or run_id in ("", ".", ".."):
            raise ConfigError(f"{run_id!r} is not a run of this workspace")
        return path

    def runs(self) -> list[str]:
        return [row[0] for row in views.history(self.workspace.runs)]

    def try_model(self, run_id: str, text: str) -> dict[str, float]:
        """The run's prediction for ``text``: label probabilities (a generating model: its answer)."""
        from tunewright import load_run

        if run_id not in self._predictors:
            self._predictors = {run_id: load_run(self.run_path(run_id))}  # one model in memory at a time
        (prediction,) = self._predictors[run_id].predict([text])
        return prediction.get("probabilities") or {str(prediction.get("text", prediction)): 1.0}

    # ------------------------------------------------------------------ tune, serve, monitor, export

    def start_tuning(self, form: TrainForm, trials: int, timeout: str) -> str:
        name = time.strftime("tune-%Y%m%d-%H%M%S")
        overrides = [o for o in form.overrides(self.workspace, "x") if not o.startswith("paths.run_id=")]
        self.jobs.start(
            name, "tune", [*overrides, f"tune.trials={int(trials)}", *([f"tune.timeout={timeout}"] if timeout else [])]
        )
        return name

    def start_serving(self, run_id: str, port: int) -> str:
        name = f"serve-{run_id}"
        self.jobs.start(name, "serve", [f"run={self.run_path(run_id)}", f"serve.port={int(port)}"])
        return name

    @staticmethod
    def live_drift(port: int) -> dict[str, Any] | None:
        """The service's live monitoring state (``/v1/monitor``), or None when it is not up."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{int(port)}/v1/monitor", timeout=2) as response:
                return json.loads(response.read())
        except (OSError, ValueError):
            return None

    def start_monitoring(self, run_id: str, data: str) -> str:
        """``tunewright monitor`` of run ``run_id`` on an uploaded batch."""
        if not data.startswith(UPLOAD_PREFIX):
            raise ConfigError("monitor: upload the new batch first (a CSV, JSON lines or Parquet file)")
        path = self.workspace.upload_path(data.removeprefix(UPLOAD_PREFIX))
        name = f"monitor-{run_id}"
        columns = batch_columns(self.run_path(run_id), data_check.preview(path).columns)
        self.jobs.start(
            name,
            "monitor",
            [f"run={self.run_path(run_id)}", f"data={data_check.data_kind(path)}", f"data.path={path}", *columns],
        )
        return name

    def start_export(self, run_id: str, kind: str) -> tuple[str, Path]:
        """``tunewright export`` of run ``run_id`` into ``exports/``; returns the job and the folder."""
        if kind not in EXPORT_FORMATS:
            raise ConfigError(f"export: {kind!r} is not one of {', '.join(EXPORT_FORMATS)}")
        options = EXPORT_FORMATS[kind]
        target = self.workspace.root / "exports" / f"{run_id}-{'-'.join(o.split('=')[1] for o in options) or 'hf'}"
        name = f"export-{run_id}"
        self.jobs.start(name, "export", [f"run={self.run_path(run_id)}", f"out={target}", "overwrite=true", *options])
        return name, target

    @staticmethod
    def archive(folder: Path) -> Path:
        """``folder`` as a zip beside it, for the browser to download."""
        return Path(shutil.make_archive(str(folder), "zip", root_dir=folder))
