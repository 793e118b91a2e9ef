"""Commands the studio starts: each a normal ``tunewright`` command in its own process, so
a crash in training never takes the app down, and each recorded in the workspace so it
can be read, stopped, resumed or repeated from a terminal.

    logs/<job>.json   the command line, when it started, its process id
    logs/<job>.log    what it printed
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tunewright.run_folder import atomic_write_json
from tunewright.studio.forms import command_line

JOB_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


@dataclass
class Job:
    name: str
    command: str  # train, tune, serve, monitor, export
    args: list[str]
    process: subprocess.Popen | None = None
    started: float = 0.0
    stopped: bool = False  # ended by Stop, not by a failure of its own

    @property
    def line(self) -> str:
        return command_line(self.command, self.args)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def failed(self) -> bool:
        """Ended with an error (a stop asked for is not one)."""
        code = None if self.process is None else self.process.poll()
        return code not in (None, 0) and not self.stopped


class Jobs:
    """The commands this studio started, by job name (a run id, ``serve-<run>``, ...)."""

    def __init__(self, logs: Path):
        self.logs = logs
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, name: str, command: str, args: list[str]) -> Job:
        """Start ``tunewright <command> <args>`` as job ``name``; a job of that name that is
        still running is refused (two trainings of one run folder would fight over it)."""
        if not name or set(name) - JOB_NAME_CHARS:
            raise ValueError(f"job name {name!r}: letters, digits, '-' and '_' only")
        with self._lock:
            current = self._jobs.get(name)
            if current is not None and current.running:
                raise RuntimeError(f"{name} is already running (process {current.process.pid}); stop it first")
            job = Job(name, command, list(args), started=time.time())
            self.logs.mkdir(parents=True, exist_ok=True)
            with open(self.log_path(name), "ab") as log:
                log.write(f"$ {job.line}\n".encode())
                log.flush()
                job.process = subprocess.Popen(
                    [sys.executable, "-m", "tunewright", command, *args],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a stop reaches the command's own children too
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            atomic_write_json(
                self.logs / f"{name}.json",
                {
                    "command": command,
                    "args": job.args,
                    "line": job.line,
                    "pid": job.process.pid,
                    "started": job.started,
                },
            )
            self._jobs[name] = job
            return job

    def get(self, name: str) -> Job | None:
        return self._jobs.get(name)

    def stop(self, name: str, wait_s: float = 30.0) -> bool:
        """Stop job ``name`` (SIGTERM to its process group, SIGKILL after ``wait_s``); a
        training stopped this way resumes from its newest checkpoint when started again.
        False when it was not running."""
        job = self._jobs.get(name)
        if job is None or not job.running:
            return False
        job.stopped = True
        os.killpg(job.process.pid, signal.SIGTERM)
        try:
            job.process.wait(wait_s)
        except subprocess.TimeoutExpired:
            os.killpg(job.process.pid, signal.SIGKILL)
            job.process.wait()
        return True

    def stop_all(self) -> None:
        for name in list(self._jobs):
            self.stop(name)

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_path(name)
        if not path.is_file():
            return ""
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def recorded_args(self, name: str) -> tuple[str, list[str]] | None:
        """The command and arguments job ``name`` was last started with (read from its
        record, so a training can be resumed after the studio itself restarted)."""
        path = self.logs / f"{name}.json"
        if not path.is_file():
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
        return record["command"], list(record["args"])
