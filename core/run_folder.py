"""The run folder: one directory per run that holds its whole record.

Layout (see ``docs/architecture.md``)::

    runs/<run_id>/config.yaml  results.json  metrics.jsonl  manifest.json  model/

Every file that matters is written atomically: to a temporary name in the same folder,
then renamed, so a crash never leaves half a file where a whole one was.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import json
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from tunewright.data import file_sha256
from tunewright.errors import RunFolderError, first_line

RUN_ID_ENV = "TUNEWRIGHT_RUN_ID"
LOCK_FILE = ".lock"
HASHES_KEY = "file_sha256"  # manifest.json: run-relative path -> SHA-256 of what the run wrote
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


def fsync_tree(directory: Path) -> None:
    """Flush every file under ``directory`` and the folders themselves to disk, so a
    rename that follows survives a power loss, not only a process crash."""
    for path in sorted(directory.rglob("*"), reverse=True):
        if path.is_file() and not path.is_symlink():
            _fsync(path, os.O_RDONLY)
        elif path.is_dir():
            _fsync(path, os.O_RDONLY | os.O_DIRECTORY)
    _fsync(directory, os.O_RDONLY | os.O_DIRECTORY)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _readable_like_user_files(directory: Path) -> None:
    """Give what a writer created under ``directory`` the permissions the user's umask
    gives any new file (``mkstemp`` and some writers make weights 0600)."""
    os.chmod(directory, 0o777 & ~_UMASK)
    for path in directory.rglob("*"):
        if not path.is_symlink():
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_UMASK)


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty folder beside ``target`` to fill; when the block succeeds it takes
    ``target``'s place in one rename, when it fails it is removed and ``target`` kept.

    The caller decides whether ``target`` may be replaced (an export refuses folders it
    did not write). A replaced folder is first renamed aside (``.<name>.old.*``) and
    removed only once the new one stands at ``target``: a crash between the two renames
    leaves the old folder there, never half of either. The new folder's files are fsynced
    before the rename and the parent after it; they get the user's usual permissions;
    the staging name starts with a dot so listings of finished folders skip it.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        _readable_like_user_files(staging)
        fsync_tree(staging)
        aside = None
        if target.exists() and any(target.iterdir()):
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, aside / target.name)
        os.replace(staging, target)  # an empty target folder is replaced by the rename itself
        _fsync(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        if aside is not None:
            shutil.rmtree(aside)
    except Exception as error:
        code = None if isinstance(error, OSError) else writer_errno(error, staging)
        shutil.rmtree(staging, ignore_errors=True)
        if code is not None:  # safetensors and torch report a failed write in their own words
            raise OSError(code, os.strerror(code), str(target)) from error
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def writer_errno(error: Exception, directory: Path) -> int | None:
    """The operating-system error behind a writer's own exception: the ``os error N``
    that safetensors quotes, or ENOSPC when the file system is (almost) full (torch
    reports only a failed position check); ``None`` when the failure was not the disk's."""
    quoted = re.search(r"\(os error (\d+)\)", str(error))
    if quoted:
        return int(quoted.group(1))
    try:
        stats = os.statvfs(directory)
    except OSError:
        return None
    return errno.ENOSPC if stats.f_bavail * stats.f_frsize < 1 << 20 else None


def remove_stale_staging(directory: Path, pattern: str) -> None:
    """Remove the staging folders a crashed :func:`atomic_directory` left in
    ``directory`` for targets matching the glob ``pattern`` (``step-*`` finds
    ``.step-00000008.k2j1x/``); call it only while holding the run's lock, so that no
    live writer owns them."""
    stale = [p for p in directory.glob(f".{pattern}.*") if p.is_dir()] if directory.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)


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


# Run folders whose lock this process holds.
_HELD_LOCKS: set[Path] = set()


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

    def create(self) -> RunFolder:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def holds_run(self) -> bool:
        return (self.path / "config.yaml").is_file()

    def foreign_entries(self) -> list[str]:
        """What the folder holds besides tunewright's lock, when it holds no run: a
        folder of someone else's files is never written into."""
        if not self.path.is_dir() or self.holds_run():
            return []
        return sorted(p.name for p in self.path.iterdir() if p.name != LOCK_FILE)

    def remove_stale_staging(self) -> None:
        """Remove what crashed writers of this run left half-written (checkpoint and
        model staging folders, temporary record files); only under the run's lock."""
        remove_stale_staging(self.path / "checkpoints", "step-*")
        for name in ("model", "export"):
            remove_stale_staging(self.path, name)
        for directory in (self.path, self.path / "reports"):
            for leftover in directory.glob(".*.tmp") if directory.is_dir() else []:
                leftover.unlink(missing_ok=True)

    def remove_if_unused(self) -> None:
        """Remove the folder when it holds nothing but the lock (a run that failed
        before writing anything leaves no empty folder behind)."""
        if self.path.is_dir() and {p.name for p in self.path.iterdir()} <= {LOCK_FILE}:
            (self.path / LOCK_FILE).unlink(missing_ok=True)
            self.path.rmdir()

    @contextmanager
    def locked(self, command: str, wait: bool = False) -> Iterator[RunFolder]:
        """Hold the folder's exclusive lock while ``command`` writes to it.

        The lock is ``fcntl.flock`` on ``<run>/.lock``, released by the kernel when the
        process ends however it ends, so a killed run never leaves a stale lock. The
        file records the holder (process, host, user, command, time) for the message a
        second writer gets. With ``wait=False`` (training) a held lock is an error; with
        ``wait=True`` (monitor, export, card) the caller waits its turn. A process that
        already holds the lock may take it again (nested commands).
        """
        key = self.path.resolve()
        if key in _HELD_LOCKS:  # the outer holder releases it
            yield self
            return
        self.path.mkdir(parents=True, exist_ok=True)
        path = self.path / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(path)
                if not wait:
                    raise RunFolderError(
                        f"{self.path} is in use by {holder}; wait for it to finish, or use another paths.run_id"
                    ) from None
                print(f"tunewright: waiting for {self.path}, in use by {holder}", file=sys.stderr)
                fcntl.flock(fd, fcntl.LOCK_EX)
            record = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "user": getpass.getuser(),
                "command": command,
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
            _HELD_LOCKS.add(key)
            try:
                yield self
            finally:
                _HELD_LOCKS.discard(key)
        finally:
            os.close(fd)  # closing releases the flock

    def write_config(self, cfg: DictConfig) -> None:
        atomic_write_text(self.path / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    def read_config(self) -> DictConfig:
        """The stored config, its interpolations kept as literal text: a run folder is
        data, so ``${oc.env:SECRET}`` in a crafted ``config.yaml`` is never resolved."""
        path = self.path / "config.yaml"
        if not path.is_file():
            raise RunFolderError(f"{self.path} is not a tunewright run folder: no config.yaml")
        try:
            stored = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise RunFolderError(f"{path}: unreadable ({first_line(error)}); restore it from a copy") from None
        if not isinstance(stored, dict):
            raise RunFolderError(f"{path}: not a mapping of config keys; restore it from a copy")
        return OmegaConf.create(_escape_interpolations(stored))

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_json(self.path / name, obj)

    def read_json(self, name: str) -> Any:
        """A JSON record of the run (``reports/bias.json``), or ``None`` when it is absent;
        a corrupt record is an error naming it."""
        path = self.path / name
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise RunFolderError(f"{path}: not valid JSON ({first_line(error)}); restore it from a copy") from None

    def update_json(self, name: str, update) -> None:
        """Read a JSON object (empty when absent), let ``update`` change it, write it back atomically."""
        record = self.read_json(name) or {}
        update(record)
        self.write_json(name, record)

    def record_hashes(self, *folders: str) -> None:
        """Record in ``manifest.json`` the SHA-256 of every file under ``folders``
        (``model``, ``reports/drift_reference``), so a load can tell them unchanged."""
        hashes = {name: sha for folder in folders for name, sha in self._hashes(folder).items()}
        prefixes = tuple(f"{folder}/" for folder in folders)

        def update(manifest: dict[str, Any]) -> None:
            kept = {k: v for k, v in manifest.get(HASHES_KEY, {}).items() if not k.startswith(prefixes)}
            manifest[HASHES_KEY] = {**kept, **hashes}

        self.update_json("manifest.json", update)

    def verify_files(self, folder: str) -> None:
        """Refuse ``folder`` (``model``) when its files differ from what the manifest
        recorded: altered weights or reordered label names would otherwise load
        silently and predict wrong. A run from before hashes were recorded loads with a
        warning."""
        recorded = {
            k: v
            for k, v in ((self.read_json("manifest.json") or {}).get(HASHES_KEY) or {}).items()
            if k.startswith(f"{folder}/")
        }
        if not recorded:
            print(
                f"tunewright: WARNING: {self.path}/manifest.json records no hashes of {folder}/ (a run from before "
                f"tunewright recorded them); {folder}/ is read unverified",
                file=sys.stderr,
            )
            return
        present = self._hashes(folder)
        for name, expected in recorded.items():
            if name not in present:
                raise RunFolderError(f"{self.path / name}: missing; the run's {folder}/ is incomplete")
            if present[name] != expected:
                raise RunFolderError(
                    f"{self.path / name}: its SHA-256 differs from the one manifest.json recorded "
                    "(the file was altered or corrupted); refusing to load it"
                )
        extra = sorted(set(present) - set(recorded))
        if extra:
            raise RunFolderError(
                f"{self.path / extra[0]}: not written by the run (manifest.json does not record it); "
                f"remove it or restore {folder}/ from a copy"
            )

    def _hashes(self, folder: str) -> dict[str, str]:
        root = self.path / folder
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        return {path.relative_to(self.path).as_posix(): file_sha256(path) for path in files}

    def rewind_metrics(self, step: int) -> None:
        """Keep only the training and validation lines of ``metrics.jsonl`` up to
        ``step`` (where a resumed run continues), and no torn last line: a resumed run's
        metrics read like those of a run never interrupted."""
        if not self.metrics_path.is_file():
            return
        kept = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # the last line of a killed writer
            if isinstance(record, dict) and record.get("split") != "test" and record.get("step", 0) <= step:
                kept.append(line + "\n")
        atomic_write_text(self.metrics_path, "".join(kept))

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line; each line is flushed so a crash keeps earlier lines."""
        with self.metrics_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


def _lock_holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        return f"{holder['command']} (pid {holder['pid']} on {holder['host']}, user {holder['user']}, since {holder['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _escape_interpolations(value: Any) -> Any:
    """``value`` with every ``${`` escaped, so OmegaConf reads it as plain text."""
    if isinstance(value, dict):
        return {key: _escape_interpolations(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escape_interpolations(item) for item in value]
    if isinstance(value, str):
        return value.replace("${", "\\${")
    return value
