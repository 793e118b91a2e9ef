"""Inputs given as files (images, recordings): the check each kind gets wherever a
command reads one (``predict`` arguments, ``serve`` uploads), and the word its messages
use for it. Data loaders check their files the same way (:mod:`tunewright.images`,
:mod:`tunewright.audio`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tunewright.audio import check_audio
from tunewright.contracts import MEDIA_FIELDS
from tunewright.images import check_image

CHECKS: dict[str, Callable[[Path, str], object]] = {"image": check_image, "audio": check_audio}
NOUNS = {"image": "image", "audio": "recording"}
assert set(CHECKS) == set(MEDIA_FIELDS), "every media field needs a check"


def check_media(field: str, path: Path, where: str) -> None:
    """``path`` is a readable file of the kind ``field`` names; otherwise a
    :class:`~tunewright.errors.DataError` that starts with ``where``."""
    CHECKS[field](path, where)
