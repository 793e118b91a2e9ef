"""The run folder: one directory per run that holds its whole record.

Layout (see ``docs/architecture.md``)::

    runs/<run_id>/config.yaml  results.json  metrics.jsonl  manifest.json  model/

Every file that matters is written atomically: to a temporary name in the same folder,
then renamed, so a crash never leaves half a file where a whole one was.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from tunewright.errors import RunFolderError

RUN_ID_ENV = "TUNEWRIGHT_RUN_ID"
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide the record from its readers
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty folder beside ``target`` to fill; when the block succeeds it
    replaces ``target`` in one rename, when it fails it is removed and ``target`` kept.

    The folder is readable like any the user creates (``mkdtemp`` alone makes it 0700),
    and its name starts with a dot so listings of finished folders skip it.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        os.chmod(staging, 0o777 & ~_UMASK)
        yield staging
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def new_run_id(cfg: DictConfig) -> str:
    """A readable, unique run id: the start time, the method and a random suffix."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{cfg.method.kind}-{secrets.token_hex(3)}"


def agree_on_run_id(cfg: DictConfig) -> str:
    """The run id every rank uses.

    Taken from ``paths.run_id`` or the ``TUNEWRIGHT_RUN_ID`` environment variable when
    set; otherwise rank 0 chooses one and broadcasts it, so ranks never derive different
    folders from their own clocks.
    """
    chosen = cfg.paths.run_id or os.environ.get(RUN_ID_ENV)
    if chosen:
        return chosen
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        box = [new_run_id(cfg) if dist.get_rank() == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return new_run_id(cfg)


class RunFolder:
    """Paths and writers for one run's folder."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def create(self) -> "RunFolder":
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def write_config(self, cfg: DictConfig) -> None:
        atomic_write_text(self.path / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    def read_config(self) -> DictConfig:
        path = self.path / "config.yaml"
        if not path.is_file():
            raise RunFolderError(f"{self.path} is not a tunewright run folder: no config.yaml")
        return OmegaConf.load(path)

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_json(self.path / name, obj)

    def read_json(self, name: str) -> Any:
        """A JSON record of the run (``reports/bias.json``), or ``None`` when it is absent."""
        path = self.path / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def update_json(self, name: str, update) -> None:
        """Read a JSON object (empty when absent), let ``update`` change it, write it back atomically."""
        record = self.read_json(name) or {}
        update(record)
        self.write_json(name, record)

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line; each line is flushed so a crash keeps earlier lines."""
        with self.metrics_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
