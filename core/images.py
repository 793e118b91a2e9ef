"""Image files as examples: checked when data loads, decoded when a batch is built.

An image example is ``{"image": "/absolute/path.png", "label": 3}``. Loaders check every
file once (:func:`check_image`), so a missing or corrupt image fails before training
with its path named; tasks decode batches with :func:`open_image`; cleaning
de-duplicates images by content (:func:`tunewright.data.media_sha256`).
"""

from __future__ import annotations

from pathlib import Path

from tunewright.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def check_image(path: Path, where: str) -> None:
    """``path`` exists and decodes as an image; otherwise a :class:`DataError` that starts
    with ``where`` (the file and row that named it)."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DataError(f"{where}: no image file {path}")
    try:
        with Image.open(path) as image:
            image.load()  # decodes every pixel: a truncated file fails here, not mid-training
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"{where}: {path} is not a readable image ({error})") from None


def open_image(path: str):
    """The image at ``path`` as RGB (greyscale and palette images converted)."""
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")
