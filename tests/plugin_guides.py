"""Packages assembled from the plugin guides' own code blocks.

A block preceded by ``<!-- file: <path> -->`` is that file (blocks naming one path are
its parts, in order); ``<!-- same as: <path> -->`` shows a repository file whole.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"<!-- (file|same as): (\S+) -->\n```[^\n]*\n(.*?)\n```", re.S)


def guide_files(page: str) -> dict[str, str]:
    """The files a guide's ``file:`` blocks make, by path."""
    parts: dict[str, list[str]] = {}
    for kind, path, content in BLOCK.findall((DOCS / page).read_text(encoding="utf-8")):
        if kind == "file":
            parts.setdefault(path, []).append(content.strip("\n"))
    return {path: "\n\n\n".join(pieces) + "\n" for path, pieces in parts.items()}


def build(page: str, root: Path) -> Path:
    """Write the guide's files under ``root``; returns the package folder."""
    files = guide_files(page)
    for path, content in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content, encoding="utf-8")
    (package,) = {Path(path).parts[0] for path in files}
    return root / package


def pip_install(package: Path, site: Path) -> None:
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(package),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr
