"""Structured records (transactions) tuned on by a text model: ``data.text_columns`` and
``data.text_template`` render each row's columns as its text; sensitive columns stay out
of it and reach the group audit."""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest
from conftest import tiny_run_overrides
from omegaconf import OmegaConf

from tunewright.cli import main
from tunewright.errors import ConfigError, DataError
from tunewright.plugins.datasets.files import FileDataConfig, _csv, _jsonl

COLUMNS = ["amount", "merchant", "country", "channel", "customer_group", "label"]


def write_transactions(path, rows: int = 200):
    """Synthetic card transactions: large online amounts abroad are fraud; the customer
    group (the sensitive column) is drawn independently of everything else."""
    rng = np.random.default_rng(0)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for i in range(rows):
            fraud = i % 2 == 0
            writer.writerow(
                [
                    f"{rng.uniform(900, 5000) if fraud else rng.uniform(2, 80):.2f}",
                    rng.choice(["ACME Electronics", "Giftcards4U"] if fraud else ["Corner Bakery", "City Metro"]),
                    rng.choice(["NG", "RU"] if fraud else ["FR", "DE"]),
                    "online" if fraud else rng.choice(["chip", "contactless"]),
                    rng.choice(["under_30", "over_60"]),
                    "fraud" if fraud else "ok",
                ]
            )
    return path


def load(path, reader=_csv, **settings):
    return reader(OmegaConf.structured(FileDataConfig(kind="csv", path=str(path), **settings))).load()


def test_columns_render_as_name_value_in_the_given_order(tmp_path):
    write_transactions(tmp_path / "transactions.csv", rows=20)
    data = load(
        tmp_path / "transactions.csv",
        text_columns=["merchant", "amount", "country"],
        sensitive_columns=["customer_group"],
    )
    example = data.splits["train"][0]
    merchant, amount, country = (part.split(": ", 1) for part in example["text"].split("; "))
    assert [merchant[0], amount[0], country[0]] == ["merchant", "amount", "country"]
    assert float(amount[1]) > 0 and example["sensitive"]["customer_group"] in {"under_30", "over_60"}
    assert "customer_group" not in example["text"] and example["sensitive"]["customer_group"] not in example["text"]


def test_a_template_fills_columns_by_name_and_a_missing_value_renders_empty(tmp_path):
    rows = [{"merchant": "ACME", "amount": 12.5, "country": None, "label": "ok"}] * 10
    rows += [{"merchant": "Giftcards4U", "amount": 4000, "country": "RU", "label": "fraud"}] * 10
    (tmp_path / "transactions.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    data = load(tmp_path / "transactions.jsonl", _jsonl, text_template="{merchant} charged {amount:.2f} in {country}.")
    texts = {example["text"] for split in data.splits.values() for example in split}
    assert texts == {"ACME charged 12.50 in .", "Giftcards4U charged 4000.00 in RU."}


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        (
            {"text_columns": ["amount", "customer_group"], "sensitive_columns": ["customer_group"]},
            "'customer_group' is in data.sensitive_columns",
        ),
        ({"text_columns": ["amount", "label"]}, "'label' is the label column"),
        ({"text_template": "{amount.__class__}"}, "{amount.__class__} is not a column name"),
        ({"text_template": "{0} and {}"}, "{0} is not a column name"),
        ({"text_template": "no columns at all"}, "names no column"),
        ({"text_template": "{amount", "text_columns": []}, "data.text_template: "),
        (
            {"text_template": "{amount}", "text_columns": ["amount"]},
            "data.text_columns and data.text_template: a row has one input",
        ),
        ({"image_column": "photo", "text_columns": ["amount"]}, "data.image_column and data.text_columns"),
        ({"messages_column": "chat", "text_template": "{amount}"}, "data.messages_column and data.text_template"),
    ],
)
def test_a_record_setting_that_would_leak_or_cannot_render_is_refused(tmp_path, settings, words):
    write_transactions(tmp_path / "transactions.csv", rows=20)
    with pytest.raises(ConfigError, match="data.text_") as raised:
        load(tmp_path / "transactions.csv", **settings)
    assert words in str(raised.value)


def test_a_missing_column_or_a_value_the_template_cannot_format_names_the_file(tmp_path):
    write_transactions(tmp_path / "transactions.csv", rows=20)
    with pytest.raises(
        DataError, match=r"transactions.csv: no column 'merchnt' \(data.text_columns\[1\]\); did you mean 'merchant'"
    ):
        load(tmp_path / "transactions.csv", text_columns=["amount", "merchnt"])
    with pytest.raises(DataError, match=r"transactions.csv, row 2: data.text_template does not fit this row"):
        load(tmp_path / "transactions.csv", text_template="{amount:.2f}")  # CSV values are text: no number format


def test_a_model_tuned_on_records_is_audited_on_their_sensitive_column(tiny_bert, tmp_path):
    path = write_transactions(tmp_path / "transactions.csv")
    overrides = tiny_run_overrides(
        tiny_bert,
        tmp_path / "runs",
        "data=csv",
        f"data.path={path}",
        "data.limit=null",
        "data.text_columns=[amount,merchant,country,channel]",
        "data.sensitive_columns=[customer_group]",
        "audit=group_metrics",
        "model.max_length=64",
        "paths.run_id=fraud",
    )
    assert main(["train", *overrides]) == 0
    folder = tmp_path / "runs" / "fraud"
    predictions = [json.loads(line) for line in (folder / "test_predictions.jsonl").read_text().splitlines()]
    assert predictions and all(row["text"].startswith("amount: ") for row in predictions)
    assert not any("under_30" in row["text"] or "over_60" in row["text"] for row in predictions)
    bias = json.loads((folder / "reports" / "bias.json").read_text())
    groups = {group["group"]: group["size"] for group in bias["audits"]["group_metrics"]["groups"]}
    read = Counter(f"customer_group={row['sensitive']['customer_group']}" for row in predictions)
    assert groups == dict(read) and set(groups) == {"customer_group=under_30", "customer_group=over_60"}
