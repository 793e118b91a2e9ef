"""``data=medical_abstracts``: medical abstracts in five condition classes.

The Medical Abstracts Text Classification corpus (Schopf, Braun & Matthes, 2022) is
licensed CC BY-SA 3.0; point ``data.path`` at your copy's folder, holding
``medical_tc_labels.csv`` and ``medical_tc_train.csv`` and/or ``medical_tc_test.csv``.
Files present are used as given splits; missing splits are carved from the first one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tunewright import hookimpl
from tunewright.contracts import DataSource
from tunewright.data import DomainData, file_sha256, labelled_examples, split_given
from tunewright.errors import ConfigError
from tunewright.readers import read_csv, require_columns
from tunewright.schema import DataConfig

WHERE = (
    "get it from the corpus' GitHub release (sebischair/Medical-Abstracts-TC-Corpus) and set data.path to its folder"
)


@dataclass
class MedicalAbstractsConfig(DataConfig):
    path: Optional[str] = None  # the folder holding medical_tc_*.csv


class MedicalAbstracts(DataSource):
    def __init__(self, cfg: MedicalAbstractsConfig):
        self.cfg = cfg

    def load(self) -> DomainData:
        if not self.cfg.path:
            raise ConfigError(f"data.path: required; {WHERE}")
        folder = Path(self.cfg.path).expanduser()
        labels_path = folder / "medical_tc_labels.csv"
        header, rows = read_csv(labels_path)
        require_columns(labels_path, header, {"labels": "condition_label", "label names": "condition_name"})
        names = {fields["condition_label"]: fields["condition_name"] for _, fields in rows}
        label_names = [names[key] for key in sorted(names, key=int)]
        files = {split: folder / f"medical_tc_{split}.csv" for split in ("train", "test")}
        files = {split: path for split, path in files.items() if path.is_file()}
        if not files:
            raise ConfigError(f"data.path: no medical_tc_train.csv or medical_tc_test.csv in {folder}; {WHERE}")
        given, notes = {}, []
        for split, path in files.items():
            header, rows = read_csv(path)
            require_columns(path, header, {"text_column": "medical_abstract", "label_column": "condition_label"})
            labelled = (
                (row, {"text": f["medical_abstract"]}, names.get(f["condition_label"], f["condition_label"]))
                for row, f in rows
            )
            given[split] = labelled_examples(
                path, labelled, label_names, self.cfg.cleaning.unknown_labels, notes, split, self.cfg.label_map
            )
        if "train" not in given:  # only the test split is present: it becomes the pool to split
            given = {"train": given.pop("test")}
        sources = [{"path": path.name, "sha256": file_sha256(path)} for path in files.values()]
        return DomainData(split_given(given, self.cfg), label_names, sources, notes)


@hookimpl
def tunewright_register_datasets(registry):
    registry.add(
        "medical_abstracts",
        MedicalAbstracts,
        schema=MedicalAbstractsConfig,
        description="medical abstracts, 5 condition classes (your copy: CC BY-SA 3.0)",
    )
