"""A table of malformed inputs and abusive configs: each one ends in one line that names
the file, row, column or key and what to do, or in a normalisation the data card records.

Every case runs the real ``tunewright train`` command line (on the tiny model, so a
case that got past its check would go on to train and fail the test).
"""

from __future__ import annotations

import json

import pytest
from conftest import tiny_run_overrides
from PIL import Image

from tunewright.cleaning import clean, data_card
from tunewright.cli import main
from tunewright.config import compose_config
from tunewright.plugin_manager import get_plugins

ROWS = [("Great sound, fits perfectly.", "positive"), ("Battery died in a day.", "negative")] * 20


def csv_text(rows, header="text,label") -> str:
    return "\n".join([header, *(f'"{text}",{label}' for text, label in rows)]) + "\n"


def write(folder, name, content) -> str:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def truncated_jpeg(folder) -> str:
    """A CSV naming one JPEG cut short (the header verifies; the pixels do not decode)."""
    images = folder / "images"
    images.mkdir()
    for index in range(12):
        Image.new("RGB", (32, 32), (index * 20, 0, 0)).save(images / f"{index}.jpg")
    whole = (images / "0.jpg").read_bytes()
    (images / "0.jpg").write_bytes(whole[: len(whole) // 2])
    rows = [f"images/{i}.jpg,{'red' if i % 2 else 'dark'}" for i in range(12)]
    return write(folder, "images.csv", "path,label\n" + "\n".join(rows) + "\n")


# (case, files to write -> overrides, the one line expected on stderr)
CASES = [
    (
        "quote open to the end",
        lambda d: [
            "data=csv",
            f"data.path={write(d, 'qe.csv', csv_text(ROWS) + chr(34) + 'never closed,positive' + chr(10))}",
        ],
        "qe.csv, row 42: a quote opened in this row is never closed",
    ),
    ("missing file", lambda d: ["data=csv", f"data.path={d / 'nope.csv'}"], "nope.csv: no such file"),
    (
        "ragged row",
        lambda d: ["data=csv", f"data.path={write(d, 'r.csv', csv_text(ROWS) + 'one,two,three' + chr(10))}"],
        "r.csv, row 42: 3 fields where the header has 2",
    ),
    (
        "unbalanced quote",
        lambda d: [
            "data=csv",
            "data.path="
            + write(
                d, "q.csv", 'text,label\n"fine",positive\n"open quote,negative\n' + csv_text(ROWS).split("\n", 1)[1]
            ),
        ],
        "q.csv, row 3: a quote opened in this row does not close where its field ends",
    ),
    (
        "no header row",
        lambda d: ["data=csv", f"data.path={write(d, 'h.csv', csv_text(ROWS).split(chr(10), 1)[1])}"],
        "does the file lack a header row?",
    ),
    (
        "bad encoding",
        lambda d: [
            "data=csv",
            f"data.path={write(d, 'e.csv', csv_text(ROWS).encode() + bytes([0xFF]) + b',positive' + bytes([10]))}",
        ],
        "e.csv, row 42: not valid utf-8 (byte 0xff); set data.encoding",
    ),
    (
        "empty delimiter",
        lambda d: ["data=csv", f"data.path={write(d, 'd.csv', csv_text(ROWS))}", "data.delimiter=''"],
        "data.delimiter='': give one character",
    ),
    (
        "list in a text column",
        lambda d: [
            "data=jsonl",
            "data.path="
            + write(
                d,
                "l.jsonl",
                "\n".join(
                    [json.dumps({"text": t, "label": lab}) for t, lab in ROWS]
                    + [json.dumps({"text": ["a", "list"], "label": "positive"})]
                ),
            ),
        ],
        "l.jsonl, row 41, column 'text': expected text, got list",
    ),
    (
        "object as a label",
        lambda d: [
            "data=jsonl",
            "data.path="
            + write(
                d,
                "o.jsonl",
                "\n".join(
                    [json.dumps({"text": t, "label": lab}) for t, lab in ROWS]
                    + [json.dumps({"text": "x", "label": {"a": 1}})]
                ),
            ),
        ],
        "o.jsonl, row 41: the label is a dict, not a single value",
    ),
    (
        "not JSON",
        lambda d: [
            "data=jsonl",
            f"data.path={write(d, 'j.jsonl', json.dumps({'text': 'a', 'label': 'b'}) + chr(10) + '{oops' + chr(10))}",
        ],
        "j.jsonl, row 2: not valid JSON",
    ),
    (
        "unknown label",
        lambda d: [
            "data=csv",
            f"data.train_path={write(d, 'tr.csv', csv_text(ROWS))}",
            f"data.test_path={write(d, 'te.csv', csv_text(ROWS[:4] + [('meh', 'neutral')]))}",
        ],
        "te.csv, row 6: unknown label 'neutral'; labels: negative, positive. Map it with data.label_map",
    ),
    (
        "truncated image",
        lambda d: ["data=csv", f"data.path={truncated_jpeg(d)}", "data.image_column=path"],
        "images.csv, row 2: ",
    ),
    (
        "missing model directory",
        lambda d: ["model.name_or_path=/nonexistent"],
        "model.name_or_path=/nonexistent: no such directory",
    ),
    ("max_length beyond positions", lambda d: ["model.max_length=4096"], "model.max_length=4096: "),
    ("zero batch size", lambda d: ["trainer.batch_size=0"], "trainer.batch_size=0: must be >= 1"),
    ("negative batch size", lambda d: ["trainer.batch_size=-4"], "trainer.batch_size=-4: must be >= 1"),
    (
        "zero accumulation",
        lambda d: ["trainer.gradient_accumulation_steps=0"],
        "trainer.gradient_accumulation_steps=0: must be >= 1",
    ),
    ("zero logging interval", lambda d: ["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps=0: must be >= 1"),
    ("negative learning rate", lambda d: ["trainer.learning_rate=-0.001"], "trainer.learning_rate=-0.001: must be > 0"),
    ("negative warmup", lambda d: ["trainer.warmup_ratio=-0.1"], "trainer.warmup_ratio=-0.1: must be in [0, 1)"),
    ("zero epochs", lambda d: ["trainer.max_epochs=0"], "trainer.max_epochs=0: must be >= 1"),
    (
        "unknown device",
        lambda d: ["trainer.device=tpu"],
        "trainer.device='tpu': must be auto, cpu, cuda, cuda:<index> or mps",
    ),
    ("negative limit", lambda d: ["data.limit=-5"], "data.limit=-5: must be >= 1"),
    ("zero LoRA rank", lambda d: ["method=lora", "method.r=0"], "method.r=0: must be >= 1"),
    ("significance out of range", lambda d: ["monitor.significance=2"], "monitor.significance=2.0: must be in (0, 1)"),
    ("misspelt key", lambda d: ["trainer.max_epoch=1"], "trainer.max_epoch: unknown key; valid keys:"),
    ("unquoted markup", lambda d: ["card.intended_use=<b>x</b> | y"], "quote it: card.intended_use='<b>x</b> | y'"),
    ("wrong type", lambda d: ["trainer.max_epochs=abc"], "trainer.max_epochs"),
]


@pytest.mark.parametrize(("case", "arrange", "expected"), CASES, ids=[case for case, _, _ in CASES])
def test_bad_input_is_one_line_naming_what_is_wrong(tiny_bert, tmp_path, capsys, case, arrange, expected):
    overrides = tiny_run_overrides(tiny_bert, tmp_path / "runs", *arrange(tmp_path))
    try:
        status = main(["train", *overrides])
    except SystemExit as stop:  # Hydra's job exits with the status
        status = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    assert status in (1, 2) and len(err) == 1, err
    assert err[0].startswith("tunewright: ") and expected in err[0], err[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # and no empty run folder


def load_cleaned(overrides):
    cfg = compose_config(overrides, get_plugins())
    data, report = clean(get_plugins().registries["datasets"].build(cfg.data).load(), cfg.data.cleaning)
    return data, data_card(cfg.data.kind, data, report, [])


def test_what_is_safe_to_normalise_is_normalised_and_recorded(tmp_path):
    rows = (
        ["text,label"]
        + [f"good thing {i},pos" for i in range(10)]
        + [f"fine thing {i},pos " for i in range(10)]
        + [f"bad thing {i},neg" for i in range(20)]
        + ["no label here,", "nan label,nan", "nul\x00byte text,neg"]
    )
    path = write(tmp_path, "labels.csv", "\ufeff" + "\n".join(rows) + "\n")  # with a byte-order mark
    data, card = load_cleaned(["data=csv", f"data.path={path}", "data.test_fraction=0.25"])
    assert data.label_names == ["neg", "pos"]  # "pos " is "pos"; empty and NaN labels are no class
    steps = {step["step"]: step for step in card["cleaning"]}
    assert steps["normalise_labels"]["rows_changed"] == 10 and "'pos ' -> 'pos'" in steps["normalise_labels"]["reason"]
    missing = [d for d in card["dropped_rows"] if d["step"] == "missing_label"]
    assert [(d["source"], d["row"]) for d in missing] == [(path, 42), (path, 43)]
    texts = [e["text"] for split in data.splits.values() for e in split]
    assert "nulbyte text" in texts and not any("\x00" in t for t in texts)


def test_numeric_labels_are_one_class_each_and_can_be_mapped(tmp_path):
    rows = [{"text": f"review {i}", "label": value} for i, value in enumerate([1, 1.0, "1", 0, 0.0, "0"] * 8)]
    path = write(tmp_path, "numbers.jsonl", "\n".join(map(json.dumps, rows)) + "\n")
    data, _ = load_cleaned(["data=jsonl", f"data.path={path}", "data.cleaning.deduplicate=none"])
    assert data.label_names == ["0", "1"]
    data, _ = load_cleaned(
        [
            "data=jsonl",
            f"data.path={path}",
            "data.cleaning.deduplicate=none",
            "data.label_map={0: negative, 1: positive}",
        ]
    )
    assert data.label_names == ["negative", "positive"]


def test_a_tab_delimiter_is_accepted_as_the_docs_write_it_and_long_fields_are_truncated(tmp_path):
    long_text = "word " * 2_100_000  # a 10 MB field
    rows = ["text\tlabel", f"{long_text}\tpositive"] + [f"{t} {i}\t{lab}" for i, (t, lab) in enumerate(ROWS)]
    path = write(tmp_path, "tabs.tsv", "\n".join(rows) + "\n")
    for written in ("\\t", "tab"):
        data, card = load_cleaned(["data=csv", f"data.path={path}", f"data.delimiter={written}"])
        assert data.label_names == ["negative", "positive"]
        assert max(len(e["text"]) for split in data.splits.values() for e in split) == 10000
        assert any(step["step"] == "over_long" for step in card["cleaning"])


def test_every_dropped_row_is_listed_with_its_source_row_and_reason(tmp_path):
    rows = ["text,label", "Same words here.,positive", '"same words, here",positive', "Other words.,negative"] + [
        f"more text {i},{'positive' if i % 2 else 'negative'}" for i in range(30)
    ]
    path = write(tmp_path, "dupes.csv", "\n".join(rows) + "\n")
    _, card = load_cleaned(["data=csv", f"data.path={path}", "data.validation_fraction=0", "data.test_fraction=0.2"])
    (dropped,) = [d for d in card["dropped_rows"] if d["step"] in ("deduplicate", "leakage")]
    assert dropped["row"] in (2, 3) and dropped["source"] == path and "near duplicate of" in dropped["reason"]
    assert f"row {5 - dropped['row']} of {path}" in dropped["reason"]
    assert card["dropped_rows_total"] == 1
