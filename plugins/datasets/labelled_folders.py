"""Media files sorted into one folder per label, the layout ``data=image_folder`` and
``data=audio_folder`` share.

    root/                         root/
      <label>/<file>      or        train/<label>/<file>
                                    validation/...   test/...

A root whose sub-folders are ``train`` (and optionally ``validation`` or ``val``, and
``test``) gives its own splits; otherwise every label folder is one pool, split like
any other source (stratified, seeded). Every file is checked once while loading, so a
corrupt file fails before training with its path named.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

from tunewright.contracts import DataSource
from tunewright.data import DomainData, labelled_examples, media_source, split_given
from tunewright.errors import ConfigError, DataError
from tunewright.schema import DataConfig

SPLIT_FOLDERS = {"train": ("train",), "validation": ("validation", "val"), "test": ("test",)}


@dataclass
class LabelledFoldersConfig(DataConfig):
    path: Optional[str] = None  # the root folder: <label>/<file> or <split>/<label>/<file>
    labels: Optional[list[str]] = None  # the label set, in id order; default: the sorted label folders of train


class LabelledFolders(DataSource):
    """The layout above for one kind of file: subclasses name the example field, the
    file suffixes, and what checking one file adds to its example."""

    field: ClassVar[str]  # the example field holding the file's absolute path: "image", "audio"
    suffixes: ClassVar[tuple[str, ...]]
    noun: ClassVar[str]  # how the manifest counts them: "images"

    def __init__(self, cfg: LabelledFoldersConfig):
        self.cfg = cfg

    def checked(self, path: Path, where: str) -> dict[str, Any]:
        """Check one file (raising a :class:`DataError` that starts with ``where``) and
        return the example fields it gives besides its path."""
        raise NotImplementedError

    def load(self) -> DomainData:
        if not self.cfg.path:
            raise ConfigError(f"data.path: give the folder of {self.noun} (data.path=recordings)")
        root = Path(self.cfg.path).expanduser()
        if not root.is_dir():
            raise DataError(f"{root}: no such folder")
        split_roots = self._split_roots(root)
        found = {split: self._labelled_files(folder) for split, folder in split_roots.items()}
        label_names = list(self.cfg.labels) if self.cfg.labels else sorted(found["train"])
        given, notes = {}, []
        for split, by_label in found.items():
            rows = (
                (f"{path}", {self.field: str(path.resolve()), **fields}, label)
                for label, files in sorted(by_label.items())
                for path, fields in files
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
        paths = [example[self.field] for examples in given.values() for example in examples]
        return DomainData(
            split_given(given, self.cfg), label_names, [media_source(root.resolve(), paths, self.noun)], notes
        )

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

    def _labelled_files(self, folder: Path) -> dict[str, list[tuple[Path, dict[str, Any]]]]:
        """Label folder name -> its files (checked) with their fields, sorted by name."""
        by_label = {}
        for label_folder in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = sorted(p for p in label_folder.iterdir() if p.suffix.lower() in self.suffixes)
            if files:
                by_label[label_folder.name] = [(path, self.checked(path, str(label_folder))) for path in files]
        if not by_label:
            raise DataError(f"{folder}: no label folders with {self.noun} ({', '.join(self.suffixes)}) inside")
        return by_label
