"""``data=banking77``: online-banking customer-service queries, 77 intents.

BANKING77 (Casanueva et al., 2020, CC BY 4.0) ships with the package; see
``data/banking77/ATTRIBUTION.txt``. Its train and test splits are used as given; the
validation split is carved from train, stratified and seeded.
"""

from __future__ import annotations

import json
from pathlib import Path

from tunewright import hookimpl
from tunewright.data import DomainData, file_sha256, read_labelled_csv, split_given, stratified_subset
from tunewright.schema import DataConfig

BUNDLED = Path(__file__).parent / "data" / "banking77"


class Banking77:
    def __init__(self, cfg: DataConfig):
        self.cfg = cfg

    def load(self) -> DomainData:
        label_names = json.loads((BUNDLED / "categories.json").read_text(encoding="utf-8"))
        given = {
            split: read_labelled_csv(BUNDLED / f"{split}.csv", "text", "category", label_names)
            for split in ("train", "test")
        }
        if self.cfg.limit is not None:
            total = sum(len(rows) for rows in given.values())
            given = {
                split: stratified_subset(rows, round(self.cfg.limit * len(rows) / total), self.cfg.split_seed)
                for split, rows in given.items()
            }
        splits = split_given(given, self.cfg.validation_fraction, self.cfg.split_seed)
        sources = [{"path": f"banking77/{s}.csv", "sha256": file_sha256(BUNDLED / f"{s}.csv")} for s in ("train", "test")]
        return DomainData(splits, label_names, sources)


@hookimpl
def tunewright_register_datasets(registry):
    registry.add("banking77", Banking77, description="banking customer-service intents, 77 classes (bundled, CC BY 4.0)")
