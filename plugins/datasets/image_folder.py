"""``data=image_folder``: images sorted into one folder per label.

    photos/                       photos/
      defect/001.png      or        train/defect/001.png
      ok/002.jpg                    validation/...   test/...

A root whose sub-folders are ``train`` (and optionally ``validation`` or ``val``, and
``test``) gives its own splits; otherwise every label folder is one pool, split like
any other source (stratified, seeded). Every image is opened once while loading, so a
corrupt file fails before training with its path named.

    tunewright train model=image_classification model.name_or_path=google/vit-base-patch16-224 \\
        data=image_folder data.path=photos
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tunewright import hookimpl
from tunewright.contracts import DataSource
from tunewright.data import DomainData, labelled_examples, split_given
from tunewright.errors import ConfigError, DataError
from tunewright.images import IMAGE_SUFFIXES, check_image, images_source
from tunewright.schema import DataConfig

SPLIT_FOLDERS = {"train": ("train",), "validation": ("validation", "val"), "test": ("test",)}


@dataclass
class ImageFolderConfig(DataConfig):
    path: Optional[str] = None  # the root folder: <label>/<image> or <split>/<label>/<image>
    labels: Optional[list[str]] = None  # the label set, in id order; default: the sorted label folders of train


class ImageFolder(DataSource):
    def __init__(self, cfg: ImageFolderConfig):
        self.cfg = cfg

    def load(self) -> DomainData:
        if not self.cfg.path:
            raise ConfigError("data.path: give the image folder (data.path=photos)")
        root = Path(self.cfg.path).expanduser()
        if not root.is_dir():
            raise DataError(f"{root}: no such folder")
        split_roots = self._split_roots(root)
        found = {split: self._labelled_images(folder) for split, folder in split_roots.items()}
        label_names = list(self.cfg.labels) if self.cfg.labels else sorted(found["train"])
        given, notes = {}, []
        for split, by_label in found.items():
            rows = (
                (f"{image}", {"image": str(image.resolve())}, label)
                for label, images in sorted(by_label.items())
                for image in images
            )
            given[split] = labelled_examples(
                split_roots[split],
                rows,
                label_names,
                self.cfg.cleaning.unknown_labels,
                notes,
                split,
                self.cfg.label_map,
            )
        images = [example["image"] for examples in given.values() for example in examples]
        return DomainData(split_given(given, self.cfg), label_names, [images_source(root.resolve(), images)], notes)

    @staticmethod
    def _split_roots(root: Path) -> dict[str, Path]:
        """``{"train": root}``, or the split folders when ``root/train`` exists."""
        if not (root / "train").is_dir():
            return {"train": root}
        roots = {}
        for split, names in SPLIT_FOLDERS.items():
            folder = next((root / name for name in names if (root / name).is_dir()), None)
            if folder is not None:
                roots[split] = folder
        return roots

    @staticmethod
    def _labelled_images(folder: Path) -> dict[str, list[Path]]:
        """Label folder name -> its image files (checked), sorted by name."""
        by_label = {}
        for label_folder in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            images = sorted(p for p in label_folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            for image in images:
                check_image(image, str(label_folder))
            if images:
                by_label[label_folder.name] = images
        if not by_label:
            raise DataError(f"{folder}: no label folders with images ({', '.join(IMAGE_SUFFIXES)}) inside")
        return by_label


@hookimpl
def tunewright_register_datasets(registry):
    registry.add(
        "image_folder",
        ImageFolder,
        schema=ImageFolderConfig,
        description="images in one folder per label (optionally train/validation/test folders)",
    )
