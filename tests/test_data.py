"""The bundled data loads, splits are stratified and disjoint, bad files name the row."""

from __future__ import annotations

from collections import Counter

import pytest

from tunewright.data import read_tab_labelled_lines, stratified_split, stratified_subset
from tunewright.errors import DataError
from tunewright.plugins.datasets.ecommerce_reviews import BUNDLED_FILE, EcommerceReviews
from tunewright.schema import DataConfig


def test_bundled_reviews_load_whole_and_balanced():
    examples = read_tab_labelled_lines(BUNDLED_FILE)
    assert len(examples) == 1000
    assert Counter(e["label"] for e in examples) == {0: 500, 1: 500}
    assert (BUNDLED_FILE.parent / "ATTRIBUTION.txt").read_text().count("CC BY 4.0") == 1


def test_split_is_stratified_disjoint_and_seeded():
    examples = [{"text": f"t{i}", "label": i % 3} for i in range(300)]
    splits = stratified_split(examples, 0.1, 0.2, seed=7)
    assert {k: len(v) for k, v in splits.items()} == {"train": 210, "validation": 30, "test": 60}
    for rows in splits.values():
        assert Counter(r["label"] for r in rows) == Counter({0: len(rows) // 3, 1: len(rows) // 3, 2: len(rows) // 3})
    texts = [r["text"] for rows in splits.values() for r in rows]
    assert len(texts) == len(set(texts)) == 300
    assert stratified_split(examples, 0.1, 0.2, seed=7) == splits
    assert stratified_split(examples, 0.1, 0.2, seed=8) != splits


def test_limit_keeps_label_shares():
    examples = [{"text": str(i), "label": int(i < 250)} for i in range(1000)]
    subset = stratified_subset(examples, 100, seed=0)
    assert Counter(e["label"] for e in subset) == {0: 75, 1: 25}


def test_dataset_part_applies_limit_and_fractions():
    data = EcommerceReviews(DataConfig(kind="ecommerce_reviews", limit=100, validation_fraction=0.2, test_fraction=0.2)).load()
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 60, "validation": 20, "test": 20}
    assert data.label_names == ["negative", "positive"]
    assert len(data.sources[0]["sha256"]) == 64


def test_malformed_line_names_file_and_row(tmp_path):
    path = tmp_path / "reviews.txt"
    path.write_text("good phone\t1\nno label here\nbad\t0\n")
    with pytest.raises(DataError, match=r"reviews.txt, row 2: expected 'sentence<TAB>0\|1'"):
        read_tab_labelled_lines(path)


def test_too_few_examples_for_the_split_is_an_error():
    with pytest.raises(DataError, match="split 'test' is empty"):
        stratified_split([{"text": "a", "label": 0}, {"text": "b", "label": 1}], 0.0, 0.2, seed=0)
    with pytest.raises(DataError, match="leaves no training data"):
        stratified_split([{"text": "a", "label": 0}], 0.5, 0.5, seed=0)


def test_banking77_uses_its_given_splits_and_carves_validation_from_train():
    from tunewright.plugins.datasets.banking77 import Banking77

    data = Banking77(DataConfig(kind="banking77", validation_fraction=0.1)).load()
    assert len(data.label_names) == 77
    assert len(data.splits["test"]) == 3080
    assert len(data.splits["train"]) + len(data.splits["validation"]) == 10003
    assert Counter(e["label"] for e in data.splits["test"]) == {label: 40 for label in range(77)}


def test_csv_with_an_unknown_label_or_missing_column_names_file_and_row(tmp_path):
    from tunewright.data import read_labelled_csv

    path = tmp_path / "intents.csv"
    path.write_text('text,category\nhello,greet\n"multi\nline",greet\nbye,farewel\n')
    with pytest.raises(DataError, match=r"intents.csv, row 5: unknown label 'farewel'"):
        read_labelled_csv(path, "text", "category", ["greet", "farewell"])
    with pytest.raises(DataError, match=r"intents.csv: no column 'label'"):
        read_labelled_csv(path, "text", "label", ["greet"])
