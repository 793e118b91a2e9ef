"""Datasets load whole, split as promised, clean with a record, and fail clearly on bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tunewright.cleaning import clean, data_card, data_card_markdown
from tunewright.data import DomainData, split_given, stratified_subset
from tunewright.errors import ConfigError, DataError
from tunewright.plugins.datasets.banking77 import Banking77
from tunewright.plugins.datasets.ecommerce_reviews import DATA, EcommerceReviews, ReviewsConfig
from tunewright.plugins.datasets.files import FileDataConfig, _csv, _jsonl, _parquet
from tunewright.plugins.datasets.finance_phrasebank import FinancePhraseBank, PhraseBankConfig
from tunewright.plugins.datasets.medical_abstracts import MedicalAbstracts, MedicalAbstractsConfig
from tunewright.schema import CleaningConfig, DataConfig

SHARED = Path(__file__).parents[3] / "shared" / "data"


def cfg(schema, **fields):
    return OmegaConf.structured(schema(kind="x", **fields))


@pytest.mark.parametrize("domain", ["amazon", "imdb", "yelp"])
def test_every_review_domain_reads_every_row(domain):
    data = EcommerceReviews(cfg(ReviewsConfig, domain=domain, validation_fraction=0.0, test_fraction=0.5)).load()
    assert sum(len(rows) for rows in data.splits.values()) == 1000  # stray quotes and U+0085 included
    assert Counter(e["label"] for rows in data.splits.values() for e in rows) == {0: 500, 1: 500}
    assert "CC BY 4.0" in (DATA / "ATTRIBUTION.txt").read_text()


def test_split_is_stratified_disjoint_and_seeded():
    examples = [{"text": f"t{i}", "label": i % 3} for i in range(300)]
    split = lambda seed: split_given({"train": examples}, cfg(DataConfig, split_seed=seed))  # noqa: E731
    splits = split(7)
    assert {k: len(v) for k, v in splits.items()} == {"train": 210, "validation": 30, "test": 60}
    for rows in splits.values():
        assert set(Counter(r["label"] for r in rows).values()) == {len(rows) // 3}
    texts = [r["text"] for rows in splits.values() for r in rows]
    assert len(texts) == len(set(texts)) == 300
    assert split(7) == splits and split(8) != splits


def test_limit_keeps_label_shares():
    examples = [{"text": str(i), "label": int(i < 250)} for i in range(1000)]
    assert Counter(e["label"] for e in stratified_subset(examples, 100, seed=0)) == {0: 75, 1: 25}


def test_impossible_split_fractions_are_errors():
    with pytest.raises(DataError, match="leaves no training data"):
        split_given({"train": [{"text": "a", "label": 0}]}, cfg(DataConfig, validation_fraction=0.5, test_fraction=0.5))
    with pytest.raises(DataError, match="split 'test' is empty"):
        split_given({"train": [{"text": "a", "label": 0}, {"text": "b", "label": 1}]}, cfg(DataConfig))


def test_banking77_uses_its_given_splits_and_carves_validation_from_train():
    data = Banking77(cfg(DataConfig, validation_fraction=0.1)).load()
    assert len(data.label_names) == 77 and len(data.splits["test"]) == 3080
    assert len(data.splits["train"]) + len(data.splits["validation"]) == 10003
    assert Counter(e["label"] for e in data.splits["test"]) == dict.fromkeys(range(77), 40)


# ------------------------------------------------------------------ cleaning


def test_cleaning_normalises_deduplicates_removes_leakage_and_records_it():
    raw = DomainData(
        {
            "train": [
                {"text": "Great  phone!", "label": 1},
                {"text": "great phone", "label": 1},
                {"text": "   ", "label": 0},
                {"text": "Cafe\u0301\u0085 ok", "label": 0},
            ],
            "test": [{"text": "GREAT PHONE.", "label": 1}, {"text": "bad", "label": 0}],
        },
        ["negative", "positive"],
    )
    data, report = clean(raw, CleaningConfig())
    assert [e["text"] for e in data.splits["train"]] == ["Great phone!", "Café ok"]
    assert [e["text"] for e in data.splits["test"]] == ["bad"]
    steps = {(s["split"], s["step"]): s for s in report.steps}
    assert steps["train", "drop_empty"]["rows_out"] == 3
    assert steps["train", "deduplicate"]["rows_in"] == 3 and steps["train", "deduplicate"]["rows_out"] == 2
    assert steps["test", "leakage"]["rows_out"] == 1
    card = data_card("toy", data, report, [])
    assert card["composition"]["train"]["labels"] == {"negative": 1, "positive": 1}
    assert "leakage: 2 → 1 rows" in data_card_markdown(card)


def test_over_long_rows_are_truncated_or_dropped_by_policy():
    raw = DomainData({"train": [{"text": "x" * 50, "label": 0}, {"text": "short", "label": 1}]}, ["a", "b"])
    truncated, _ = clean(raw, CleaningConfig(max_chars=10))
    assert [len(e["text"]) for e in truncated.splits["train"]] == [10, 5]
    dropped, _ = clean(raw, CleaningConfig(max_chars=10, over_long="drop"))
    assert [e["text"] for e in dropped.splits["train"]] == ["short"]


# ------------------------------------------------------------------ your own files


def write(path: Path, text: str, encoding="utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_with_mapped_columns_text_pairs_and_sensitive_features(tmp_path):
    rows = "".join(f'q{i},"a, {i}",{"yes" if i % 2 else "no"},{"f" if i % 3 else "m"}\n' for i in range(40))
    path = write(tmp_path / "pairs.csv", "question,answer,relevant,gender\n" + rows)
    data = _csv(
        cfg(
            FileDataConfig,
            path=str(path),
            text_column="question",
            text_pair_column="answer",
            label_column="relevant",
            sensitive_columns=["gender"],
        )
    ).load()
    assert data.label_names == ["no", "yes"]
    example = data.splits["train"][0]
    assert example["text_pair"].startswith("a, ") and example["sensitive"]["gender"] in ("f", "m")
    assert sum(map(len, data.splits.values())) == 40


def test_jsonl_with_given_splits(tmp_path):
    line = lambda i: f'{{"body": "ticket {i}", "queue": "{"billing" if i % 2 else "tech"}"}}\n'  # noqa: E731
    train = write(tmp_path / "train.jsonl", "".join(line(i) for i in range(30)))
    test = write(tmp_path / "test.jsonl", "".join(line(i) for i in range(30, 40)))
    data = _jsonl(
        cfg(FileDataConfig, train_path=str(train), test_path=str(test), text_column="body", label_column="queue")
    ).load()
    assert len(data.splits["test"]) == 10 and len(data.splits["train"]) + len(data.splits["validation"]) == 30


@pytest.mark.parametrize(
    ("content", "options", "message"),
    [
        (None, {}, r"missing.csv: no such file"),
        ("", {}, r"bad.csv: the file is empty"),
        ("text,label\nok,a\nbad,b,extra\n", {}, r"bad.csv, row 3: 3 fields where the header has 2"),
        ("txt,label\nok,a\n", {}, r"bad.csv: no column 'text' \(data.text_column\); did you mean 'txt'\?"),
        ("text,label\nok,a\nfine,b\nhm,c\n", {"labels": ["a", "b"]}, r"bad.csv, row 4: unknown label 'c'"),
    ],
)
def test_bad_csv_input_names_file_row_and_column(tmp_path, content, options, message):
    path = tmp_path / ("missing.csv" if content is None else "bad.csv")
    if content is not None:
        write(path, content)
    with pytest.raises(DataError, match=message):
        _csv(cfg(FileDataConfig, path=str(path), **options)).load()


def test_wrong_encoding_names_the_encoding_and_row(tmp_path):
    path = write(tmp_path / "latin.csv", "text,label\nok,a\ncaf\u00e9,b\nfine,a\nthé,b\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"latin.csv, row 3: not valid utf-8 .* data.encoding"):
        _csv(cfg(FileDataConfig, path=str(path))).load()
    data = _csv(
        cfg(FileDataConfig, path=str(path), encoding="latin-1", validation_fraction=0.0, test_fraction=0.5)
    ).load()
    assert "café" in [e["text"] for rows in data.splits.values() for e in rows]


def test_malformed_jsonl_names_the_row(tmp_path):
    path = write(tmp_path / "bad.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n')
    with pytest.raises(DataError, match=r"bad.jsonl, row 2: not valid JSON"):
        _jsonl(cfg(FileDataConfig, path=str(path))).load()


def test_unknown_labels_can_be_dropped_and_are_counted(tmp_path):
    path = write(tmp_path / "t.csv", "text,label\n" + "".join(f"t{i},{'abc'[i % 3]}\n" for i in range(60)))
    data = _csv(
        cfg(FileDataConfig, path=str(path), labels=["a", "b"], cleaning=CleaningConfig(unknown_labels="drop"))
    ).load()
    assert sum(map(len, data.splits.values())) == 40
    assert data.load_notes[0]["rows_in"] == 60 and "'c': 20" in data.load_notes[0]["reason"]


def test_path_or_splits_is_required():
    with pytest.raises(ConfigError, match="data.path: give a file"):
        _csv(cfg(FileDataConfig)).load()


# ------------------------------------------------------------------ licensed packs read from a path


def test_finance_phrasebank_reads_both_encodings_and_says_where_to_get_it():
    for agreement, rows in (("all", 2264), ("50", 4846)):
        data = FinancePhraseBank(
            cfg(PhraseBankConfig, path=str(SHARED / "financial_phrasebank"), agreement=agreement)
        ).load()
        assert sum(map(len, data.splits.values())) == rows
    with pytest.raises(ConfigError, match="not bundled; download it"):
        FinancePhraseBank(cfg(PhraseBankConfig)).load()


def test_medical_abstracts_reads_the_test_split_as_a_pool():
    data = MedicalAbstracts(cfg(MedicalAbstractsConfig, path=str(SHARED / "medical_abstracts"))).load()
    assert data.label_names[0] == "neoplasms" and len(data.label_names) == 5
    assert sum(map(len, data.splits.values())) == 2888


def test_parquet_reads_every_row_with_sensitive_columns_and_fails_clearly(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "tickets.parquet"
    table = pa.table(
        {
            "body": [f"ticket {i} about {'billing' if i % 2 else 'login'}" for i in range(50)],
            "queue": ["billing" if i % 2 else "access" for i in range(50)],
            "region": ["north" if i % 3 else "south" for i in range(50)],
        }
    )
    pq.write_table(table, path, row_group_size=7)  # several record batches
    data = _parquet(
        cfg(FileDataConfig, path=str(path), text_column="body", label_column="queue", sensitive_columns=["region"])
    ).load()
    examples = [e for split in data.splits.values() for e in split]
    assert len(examples) == 50 and data.label_names == ["access", "billing"]
    assert {e["sensitive"]["region"] for e in examples} == {"north", "south"}

    with pytest.raises(DataError, match=r"tickets.parquet: no column 'text' \(data.text_column\)"):
        _parquet(cfg(FileDataConfig, path=str(path))).load()
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DataError, match="broken.parquet: not a readable Parquet file"):
        _parquet(cfg(FileDataConfig, path=str(broken))).load()


def test_hf_dataset_folders_with_classlabels_and_given_splits(tmp_path):
    import datasets

    from tunewright.plugins.datasets.hub_datasets import HubDataset, HubDatasetConfig

    features = datasets.Features(
        {"body": datasets.Value("string"), "queue": datasets.ClassLabel(names=["access", "billing"])}
    )

    def split(start, n):
        return datasets.Dataset.from_dict(
            {
                "body": [f"ticket {i} about {'billing' if i % 2 else 'login'}" for i in range(start, start + n)],
                "queue": [i % 2 for i in range(start, start + n)],
            },
            features=features,
        )

    folder = tmp_path / "tickets"
    datasets.DatasetDict({"train": split(0, 40), "test": split(40, 10)}).save_to_disk(str(folder))
    data = HubDataset(cfg(HubDatasetConfig, path=str(folder), text_column="body", label_column="queue")).load()
    assert data.label_names == ["access", "billing"]
    assert len(data.splits["test"]) == 10 and len(data.splits["train"]) + len(data.splits["validation"]) == 40
    assert data.sources[0]["path"] == str(folder) and len(data.sources[0]["sha256"]) == 64

    with pytest.raises(DataError, match=r"tickets\[train\]: no column 'text' \(data.text_column\)"):
        HubDataset(cfg(HubDatasetConfig, path=str(folder))).load()
    with pytest.raises(DataError, match="no such directory"):
        HubDataset(cfg(HubDatasetConfig, path=str(tmp_path / "missing"))).load()
    with pytest.raises(ConfigError, match="data.path or data.name"):
        HubDataset(cfg(HubDatasetConfig)).load()


def test_csv_and_jsonl_are_read_as_streams(tmp_path, monkeypatch):
    """Neither reader slurps the file: reading it whole is made to fail, and both still work."""
    from tunewright.readers import read_csv, read_jsonl

    csv_path = write(
        tmp_path / "big.csv", "text,label\n" + "".join(f'row {i} \u0085 with a quote" ,a\n' for i in range(2000))
    )
    jsonl_path = write(
        tmp_path / "big.jsonl", "".join(json.dumps({"text": f"row {i}", "label": "a"}) + "\n" for i in range(2000))
    )

    def no_slurping(self, *args, **kwargs):
        raise AssertionError(f"{self} was read whole")

    monkeypatch.setattr(Path, "read_bytes", no_slurping)
    monkeypatch.setattr(Path, "read_text", no_slurping)
    header, rows = read_csv(csv_path)
    assert header == ["text", "label"] and len(rows) == 2000 and "\u0085" in rows[0][1]["text"]
    assert len(read_jsonl(jsonl_path)[1]) == 2000


def test_training_needs_two_classes_but_a_loaded_file_may_hold_one(tiny_bert, tmp_path, capsys):
    from conftest import tiny_run_overrides

    from tunewright.cli import main

    path = write(tmp_path / "one.csv", "text,label\n" + "".join(f"fine product {i},good\n" for i in range(30)))
    assert _csv(cfg(FileDataConfig, path=str(path))).load().label_names == ["good"]
    with pytest.raises(SystemExit) as stopped:  # Hydra's job exits with the status
        main(["train", *tiny_run_overrides(tiny_bert, tmp_path / "runs", "data=csv", f"data.path={path}")])
    assert stopped.value.code == 1
    assert (
        "one.csv: the training labels hold a single class ('good'); a classifier needs two or more"
        in capsys.readouterr().err
    )
