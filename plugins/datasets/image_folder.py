"""``data=image_folder``: images sorted into one folder per label.

    photos/                       photos/
      defect/001.png      or        train/defect/001.png
      ok/002.jpg                    validation/...   test/...

(the layout of :mod:`.labelled_folders`). Every image is decoded once while loading, so
a corrupt file fails before training with its path named.

    tunewright train model=image_classification model.name_or_path=google/vit-base-patch16-224 \\
        data=image_folder data.path=photos
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunewright import hookimpl
from tunewright.images import IMAGE_SUFFIXES, check_image
from tunewright.plugins.datasets.labelled_folders import LabelledFolders, LabelledFoldersConfig


@dataclass
class ImageFolderConfig(LabelledFoldersConfig):
    pass


class ImageFolder(LabelledFolders):
    field = "image"
    suffixes = IMAGE_SUFFIXES
    noun = "images"

    def checked(self, path: Path, where: str) -> dict:
        check_image(path, where)
        return {}


@hookimpl
def tunewright_register_datasets(registry):
    registry.add(
        "image_folder",
        ImageFolder,
        schema=ImageFolderConfig,
        description="images in one folder per label (optionally train/validation/test folders)",
    )
