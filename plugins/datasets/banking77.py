"""``data=banking77``: online-banking customer-service queries, 77 intents.

BANKING77 (Casanueva et al., 2020, CC BY 4.0) ships with the package; see
``data/banking77/ATTRIBUTION.txt``. Its train and test splits are used as given; the
validation split is carved from train, stratified and seeded.
"""

from __future__ import annotations

import json
from pathlib import Path

from tunewright import hookimpl
from tunewright.contracts import DataSource
from tunewright.data import DomainData, file_sha256, labelled_examples, split_given
from tunewright.readers import read_csv, require_columns
from tunewright.schema import DataConfig

BUNDLED = Path(__file__).parent / "data" / "banking77"


class Banking77(DataSource):
    def __init__(self, cfg: DataConfig):
        self.cfg = cfg

    def load(self) -> DomainData:
        label_names = json.loads((BUNDLED / "categories.json").read_text(encoding="utf-8"))
        given, notes = {}, []
        for split in ("train", "test"):
            path = BUNDLED / f"{split}.csv"
            header, rows = read_csv(path)
            require_columns(path, header, {"text_column": "text", "label_column": "category"})
            labelled = ((row, {"text": fields["text"]}, fields["category"]) for row, fields in rows)
            given[split] = labelled_examples(
                path, labelled, label_names, self.cfg.cleaning.unknown_labels, notes, split, self.cfg.label_map
            )
        sources = [{"path": f"banking77/{s}.csv", "sha256": file_sha256(BUNDLED / f"{s}.csv")} for s in given]
        return DomainData(split_given(given, self.cfg), label_names, sources, notes)


@hookimpl
def tunewright_register_datasets(registry):
    registry.add(
        "banking77", Banking77, description="banking customer-service intents, 77 classes (bundled, CC BY 4.0)"
    )
