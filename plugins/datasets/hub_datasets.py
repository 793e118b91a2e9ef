"""``data=hf_dataset``: a Hugging Face ``datasets`` dataset, from disk or by name.

``data.path`` is a directory written by ``Dataset.save_to_disk`` or
``DatasetDict.save_to_disk`` (works offline); ``data.name`` (with ``data.config_name``)
loads one with ``datasets.load_dataset``, for users who can reach a hub. Splits named
train, validation (or valid, dev) and test are used as given; the rest of the
pipeline is the CSV loader's: columns mapped by config, missing evaluation splits
carved from train, the same errors. A ``ClassLabel`` column gives its label names.

    tunewright train data=hf_dataset data.path=/data/tickets_dataset data.text_column=body data.label_column=queue
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tunewright import hookimpl
from tunewright.errors import ConfigError, DataError
from tunewright.plugins.datasets.files import FileDataConfig, LabelledFiles

SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "valid", "dev"), "test": ("test",)}


@dataclass
class HubDatasetConfig(FileDataConfig):
    name: Optional[str] = None  # a dataset id for datasets.load_dataset (needs a hub), instead of data.path
    config_name: Optional[str] = None
    revision: Optional[str] = None


class HubDataset(LabelledFiles):
    """Each split of the dataset is read like one of the CSV loader's files."""

    def __init__(self, cfg: HubDatasetConfig):
        if cfg.image_column:
            raise ConfigError(
                "data.image_column: data=hf_dataset reads text columns only; for images use "
                "data=image_folder, or a CSV of image paths (data=csv data.image_column=...)"
            )
        super().__init__(cfg, self._split_rows)
        self._splits: dict[str, object] = {}

    def files(self) -> dict[str, Path]:
        cfg = self.cfg
        if bool(cfg.path) == bool(cfg.name):
            raise ConfigError("data.path or data.name: give a save_to_disk directory or a dataset name, one of them")
        dataset = self._load()
        found = {split: next((dataset[n] for n in names if n in dataset), None) for split, names in SPLIT_NAMES.items()}
        if found["train"] is None:
            raise DataError(f"{self._source}: no train split; splits: {', '.join(dataset)}")
        self._splits = {f"{self._source}[{split}]": part for split, part in found.items() if part is not None}
        return {split: Path(f"{self._source}[{split}]") for split, part in found.items() if part is not None}

    @property
    def _source(self) -> str:
        return self.cfg.path or self.cfg.name

    def _load(self):
        import datasets

        cfg = self.cfg
        if cfg.path:
            if not Path(cfg.path).is_dir():
                raise DataError(f"{cfg.path}: no such directory (data.path must be a save_to_disk folder)")
            try:
                dataset = datasets.load_from_disk(cfg.path)
            except (FileNotFoundError, ValueError) as error:
                raise DataError(f"{cfg.path}: not a datasets save_to_disk folder ({error})") from None
        else:
            dataset = datasets.load_dataset(cfg.name, cfg.config_name, revision=cfg.revision)
        return {"train": dataset} if isinstance(dataset, datasets.Dataset) else dict(dataset)

    def _split_rows(self, path: Path):
        part = self._splits[str(path)]
        if len(part) == 0:
            raise DataError(f"{path}: the split has no rows")
        label = self.cfg.label_column
        names = getattr(part.features.get(label), "names", None) if label else None
        rows = []
        for index, record in enumerate(part, start=1):
            if names is not None and isinstance(record.get(label), int):
                record = {**record, label: names[record[label]]}
            rows.append((index, record))
        return list(part.column_names), rows

    def _sources(self, records, given) -> list[dict[str, str]]:
        fingerprints = "".join(getattr(part, "_fingerprint", "") for part in self._splits.values())
        return [{"path": self._source, "sha256": hashlib.sha256(fingerprints.encode()).hexdigest()}]


@hookimpl
def tunewright_register_datasets(registry):
    registry.add(
        "hf_dataset",
        HubDataset,
        schema=HubDatasetConfig,
        description="a Hugging Face datasets folder (save_to_disk) or a dataset name (load_dataset)",
    )
