"""The studio's forms as the command lines they stand for.

A form is only a way of writing overrides: :meth:`TrainForm.overrides` is exactly what
``tunewright train`` receives, and :meth:`TrainForm.command` is the same thing as a line a
person can copy into a terminal.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from tunewright.errors import ConfigError
from tunewright.studio.data_check import data_kind
from tunewright.studio.workspace import Workspace

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # organisation/name
# Keys the studio sets itself, or that would name files on the server: the browser
# brings data as uploads and models through <workspace>/models, never as paths.
STUDIO_KEYS = ("paths.", "model.name_or_path")

PACK_PREFIX = "pack: "  # how the data drop-down names a bundled dataset
UPLOAD_PREFIX = "upload: "  # ... and an uploaded file


@dataclass
class TrainForm:
    """What the Configure page holds."""

    data: str  # "upload: <name>" or "pack: <dataset>"
    model: str = "minilm"
    method: str = "lora"
    text_column: str | None = None
    label_column: str | None = None
    text_pair_column: str | None = None
    image_column: str | None = None
    sensitive_columns: list[str] = field(default_factory=list)
    max_epochs: int | None = None
    learning_rate: float | None = None
    batch_size: int | None = None
    limit: int | None = None  # train on a stratified subset of this many rows
    checkpoint: str | None = None  # a folder of <workspace>/models, or a hub id (organisation/name)
    extra: str = ""  # more key=value overrides, one per line, for what the form does not show

    def data_overrides(self, workspace: Workspace) -> list[str]:
        """The ``data`` group and its columns."""
        if self.data.startswith(PACK_PREFIX):
            out = [f"data={self.data.removeprefix(PACK_PREFIX)}"]
        elif self.data.startswith(UPLOAD_PREFIX):
            path = workspace.upload_path(self.data.removeprefix(UPLOAD_PREFIX))
            kind = data_kind(path)
            out = [f"data={kind}", f"data.path={path}"]
            if kind != "image_folder":
                out += _given(
                    ("data.text_column", self.text_column),
                    ("data.label_column", self.label_column),
                    ("data.text_pair_column", self.text_pair_column),
                    ("data.image_column", self.image_column),
                )
        else:
            raise ConfigError("studio: choose the data to train on (an uploaded file or a bundled pack)")
        if self.sensitive_columns:
            out.append(f"data.sensitive_columns=[{','.join(self.sensitive_columns)}]")
        if self.limit:
            out.append(f"data.limit={self.limit}")
        return out

    def overrides(self, workspace: Workspace, run_id: str) -> list[str]:
        """Every override of the run, in the order a person would write them."""
        return [
            f"model={self.model}",
            *_given(("model.name_or_path", self.checkpoint_path(workspace))),
            f"method={self.method}",
            *self.data_overrides(workspace),
            *_given(
                ("trainer.max_epochs", self.max_epochs),
                ("trainer.learning_rate", self.learning_rate),
                ("trainer.batch_size", self.batch_size),
            ),
            *extra_overrides(self.extra),
            "trainer.progress_bar=false",
            f"paths.runs_dir={workspace.runs}",
            f"paths.run_id={run_id}",
        ]

    def checkpoint_path(self, workspace: Workspace) -> str | None:
        """``model.name_or_path`` for the chosen checkpoint (None: the model's default)."""
        name = (self.checkpoint or "").strip()
        if not name:
            return None
        if name in workspace.checkpoints():
            return str(workspace.models / name)
        if HUB_ID.fullmatch(name) and ".." not in name and not Path(name).exists():
            return name
        raise ConfigError(
            f"studio: checkpoint {name!r} is neither a model folder of {workspace.models} nor a hub id "
            "(organisation/name); put local checkpoints in that folder"
        )


def _given(*pairs: tuple[str, object]) -> list[str]:
    return [f"{key}={value}" for key, value in pairs if value not in (None, "")]


def extra_overrides(text: str) -> list[str]:
    """``key=value`` lines (blank lines and ``#`` comments skipped); a line that is not an
    override is refused, naming it."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line or line.startswith("="):
            raise ConfigError(f"studio: extra override line {number} ({line[:60]!r}) is not key=value")
        key, value = line.split("=", 1)
        if key.lstrip("+~").startswith(STUDIO_KEYS) or any(mark in value for mark in ("/", "\\", "~")):
            raise ConfigError(
                f"studio: extra override line {number} ({line[:60]!r}) names a file or folder on the server; "
                "upload data on the Data page, and choose checkpoints from the workspace's models folder"
            )
        out.append(line)
    return out


def command_line(command: str, overrides: list[str]) -> str:
    """``tunewright <command> ...`` as a shell line, each argument quoted where needed."""
    return shlex.join(["tunewright", command, *overrides])
