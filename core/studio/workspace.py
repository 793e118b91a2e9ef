"""The studio's workspace: one folder holding what the studio was given and what it ran.

    <workspace>/uploads/<name>      files uploaded from the browser (size-limited)
    <workspace>/models/<name>/      checkpoints put there for the model drop-down
    <workspace>/runs/<run_id>/      normal run folders (``paths.runs_dir``)
    <workspace>/logs/<job>.log      what each command the studio started printed

Nothing else is state: every run is a run folder and every action a normal command, so
what the studio did can be read, repeated and resumed from a terminal.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from tunewright.errors import TunewrightError

DATA_SUFFIXES = (".csv", ".jsonl", ".parquet", ".zip")
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class UploadError(TunewrightError):
    """An upload the studio refuses (too big, an unknown kind, a hostile zip)."""


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def models(self) -> Path:
        return self.root / "models"

    def create(self) -> Workspace:
        for folder in (self.uploads, self.runs, self.logs, self.models):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def store_upload(self, received: Path, original_name: str, max_mb: float) -> Path:
        """Copy an uploaded file into ``uploads/`` under a safe, unused name; a zip of
        image folders is unpacked into a folder of the same name. Returns what a run's
        ``data.path`` points at. The browser chooses only the name's letters, never a
        path on this machine."""
        name = safe_name(original_name)
        suffix = Path(name).suffix.lower()
        if suffix not in DATA_SUFFIXES:
            raise UploadError(f"{original_name}: not a data file; upload {', '.join(DATA_SUFFIXES)}")
        size_mb = received.stat().st_size / 2**20
        if size_mb > max_mb:
            raise UploadError(
                f"{original_name}: {size_mb:.1f} MB is over the upload limit of {max_mb:g} MB (studio.max_upload_mb)"
            )
        target = self._unused(self.uploads / name)
        if suffix == ".zip":
            return unpack_image_zip(received, target.with_suffix(""), max_mb)
        shutil.copyfile(received, target)
        return target

    def uploaded(self) -> list[str]:
        """Names of the uploaded data, newest first."""
        if not self.uploads.is_dir():
            return []
        entries = [p for p in self.uploads.iterdir() if p.suffix.lower() in DATA_SUFFIXES or p.is_dir()]
        return [p.name for p in sorted(entries, key=lambda p: p.stat().st_mtime, reverse=True)]

    def checkpoints(self) -> list[str]:
        """Folders of ``models/`` that hold a Hugging Face checkpoint (a config.json)."""
        if not self.models.is_dir():
            return []
        return sorted(p.name for p in self.models.iterdir() if (p / "config.json").is_file())

    def upload_path(self, name: str) -> Path:
        """The uploaded data called ``name``; a name that is not one is refused."""
        if name not in self.uploaded():
            raise UploadError(f"{name!r} is not an uploaded file of this workspace")
        return self.uploads / name

    @staticmethod
    def _unused(path: Path) -> Path:
        stem, suffix, n = path.stem, path.suffix, 1
        while path.exists() or path.with_suffix("").exists():
            n += 1
            path = path.with_name(f"{stem}-{n}{suffix}")
        return path


def safe_name(name: str) -> str:
    """A file name of letters, digits, '.', '_' and '-' only, with no folder part."""
    base = SAFE_NAME.sub("_", Path(name.replace("\\", "/")).name).lstrip(".")
    return base[:120] or "upload"


def unpack_image_zip(archive: Path, target: Path, max_mb: float) -> Path:
    """Unpack a zip of ``<label>/<image>`` folders into ``target``, refusing entries that
    would land outside it and archives that unpack to more than ``max_mb``."""
    import zipfile

    try:
        bundle = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as error:
        raise UploadError(f"{archive.name}: not a readable zip file ({error})") from error
    with bundle:
        members = [m for m in bundle.infolist() if not m.is_dir()]
        if sum(m.file_size for m in members) > max_mb * 2**20:
            raise UploadError(f"{archive.name}: unpacks to more than {max_mb:g} MB (studio.max_upload_mb)")
        for member in members:
            parts = Path(member.filename.replace("\\", "/")).parts
            if member.filename.startswith("/") or ".." in parts:
                raise UploadError(f"{archive.name}: entry {member.filename!r} points outside the archive")
        staging = target.with_name(f".{target.name}.unpacking")
        bundle.extractall(staging)
    roots = [p for p in staging.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    top = roots[0] if len(roots) == 1 and roots[0].is_dir() and any(p.is_dir() for p in roots[0].iterdir()) else None
    (top or staging).rename(target)
    if top is not None:
        shutil.rmtree(staging)  # what is left of the folder this upload was unpacked into
    return target
