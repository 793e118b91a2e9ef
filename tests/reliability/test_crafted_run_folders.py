"""Run folders are data: tampered, crafted or hostile ones are refused, never trusted.

Each case starts from a copy of one real trained run, changes what an attacker or a
failing disk would change, and checks the command that loads it refuses with one line
naming the file (or, for remote code, that nothing runs).
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import tiny_run_overrides

from tunewright.cli import main
from tunewright.errors import ConfigError, RunFolderError
from tunewright.monitoring import monitor_run
from tunewright.plugin_manager import get_plugins
from tunewright.predictor import load_run
from tunewright.run_folder import RunFolder


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", *tiny_run_overrides(tiny_bert, runs, "paths.run_id=good")]) == 0
    return runs / "good"


@pytest.fixture
def copy(trained, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(trained, target)
    return target


def rehash(run):
    """What an attacker who also edits the manifest does: re-record model/'s hashes."""
    RunFolder(run).record_hashes("model")


def test_flipped_weight_bytes_are_refused_with_the_file_named(copy, capsys):
    weights = copy / "model" / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert main(["predict", f"run={copy}", "fine"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"tunewright: {weights}: its SHA-256 differs from the one manifest.json recorded (the file was "
        "altered or corrupted); refusing to load it"
    ]
    assert main(["export", f"run={copy}", "override=test"]) == 1
    assert not (copy / "export").exists()


def test_reordered_label_names_are_refused(copy):
    labels = copy / "model" / "labels.json"
    names = json.loads(labels.read_text())["label_names"]
    labels.write_text(json.dumps({"label_names": names[::-1]}) + "\n")
    with pytest.raises(RunFolderError, match=r"labels.json: its SHA-256 differs"):
        load_run(copy)


def test_a_file_the_run_did_not_write_is_refused(copy):
    (copy / "model" / "extra.py").write_text("raise SystemExit('ran')\n")
    with pytest.raises(RunFolderError, match=r"extra.py: not written by the run"):
        load_run(copy)


def test_remote_code_in_a_crafted_folder_never_runs_without_the_loaders_consent(copy, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    (copy / "model" / "evil_tokenizer.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import BertTokenizerFast\nclass EvilTokenizer(BertTokenizerFast):\n    pass\n"
    )
    config = copy / "model" / "tokenizer_config.json"
    settings = json.loads(config.read_text())
    settings["auto_map"] = {"AutoTokenizer": [None, "evil_tokenizer.EvilTokenizer"]}
    config.write_text(json.dumps(settings))
    stored = copy / "config.yaml"
    stored.write_text(stored.read_text().replace("trust_remote_code: false", "trust_remote_code: true"))
    assert "trust_remote_code: true" in stored.read_text()
    rehash(copy)

    assert main(["predict", f"run={copy}", "fine"]) == 0  # the tokenizer's own class, not the shipped one
    assert not marker.exists()
    capsys.readouterr()

    # The same folder, trusted on the command line: the code runs (so the refusal above
    # was the guard, not a harmless folder), after a warning that names it.
    assert main(["predict", f"run={copy}", "trust_remote_code=true", "fine"]) == 0
    assert marker.exists()
    assert f"trust_remote_code=true runs code from {copy / 'model' / 'evil_tokenizer.py'}" in capsys.readouterr().err


def test_a_tampered_drift_reference_is_refused(copy):
    rows = copy / "reports" / "drift_reference" / "rows.jsonl"
    rows.write_text(rows.read_text().replace('"label": "positive"', '"label": "negative"', 1))
    with pytest.raises(RunFolderError, match=r"drift_reference/rows.jsonl: its SHA-256 differs"):
        monitor_run(copy, ["data=ecommerce_reviews", "data.limit=40"], get_plugins())


def test_a_report_name_cannot_leave_the_run_folder(copy, tmp_path):
    with pytest.raises(ConfigError, match=r"monitor.name='x/../../escaped'"):
        monitor_run(copy, ["data=ecommerce_reviews", "data.limit=40", "monitor.name=x/../../escaped"], get_plugins())
    assert not (tmp_path / "escaped").exists() and not list(tmp_path.rglob("*escaped*"))


def test_interpolations_in_a_stored_config_are_never_resolved(copy, monkeypatch):
    monkeypatch.setenv("TW_SECRET", "hunter2")
    stored = copy / "config.yaml"
    stored.write_text(stored.read_text().replace("intended_use: null", "intended_use: ${oc.env:TW_SECRET}"))
    assert main(["card", f"run={copy}"]) == 0
    card = (copy / "MODEL_CARD.md").read_text()
    assert "hunter2" not in card and "oc.env:TW\\_SECRET" in card


def test_a_corrupt_record_is_one_line_naming_it(copy, capsys):
    (copy / "manifest.json").write_text('{"run_id": ')
    assert main(["predict", f"run={copy}", "fine"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"tunewright: {copy / 'manifest.json'}: not valid JSON")


def test_user_strings_reach_markdown_records_as_text(tiny_bert, tmp_path):
    rows = (
        ["text,label"]
        + [f"nice product number {i},<b>good</b>" for i in range(30)]
        + [f"awful item number {i},<script>alert(1)</script>" for i in range(30)]
    )
    data = tmp_path / "hostile.csv"
    data.write_text("\n".join(rows) + "\n")
    overrides = tiny_run_overrides(
        tiny_bert,
        tmp_path / "runs",
        "paths.run_id=hostile",
        "data=csv",
        f"data.path={data}",
        "card.intended_use='<img src=x onerror=alert(1)> | pipes'",
        "audit=none",
    )
    assert main(["train", *overrides]) == 0
    run = tmp_path / "runs" / "hostile"
    assert main(["export", f"run={run}", "override=testing"]) == 0
    for record in (run / "MODEL_CARD.md", run / "data_card.md", run / "export" / "README.md"):
        body = record.read_text().split("---\n", 2)[-1]  # the YAML header is data, not rendered markup
        assert "<script" not in body and "<img" not in body and "<b>" not in body, record
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body, record
    assert os.stat(run / "model" / "adapter_model.safetensors").st_mode & 0o044 == 0o044  # readable like the records
