"""Nothing already saved is lost: exports never delete what tunewright did not write, a
run's record is never rewritten by another config or a second process, and a failed
start leaves no empty folder."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from conftest import slow_steps_plugin, tiny_run_overrides, with_pythonpath

from tunewright.cli import main


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", *tiny_run_overrides(tiny_bert, runs, "paths.run_id=good", "audit=none")]) == 0
    return runs / "good"


def train_status(overrides) -> int:
    """The exit status of ``tunewright train`` (Hydra's job exits through SystemExit)."""
    try:
        return main(["train", *overrides])
    except SystemExit as stop:
        return stop.code


def snapshot(folder):
    return {
        p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"
    }


def test_export_refuses_the_working_directory_the_run_and_its_parents(trained, tmp_path, monkeypatch, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    before = snapshot(trained)
    for out, reason in (
        (".", "is the working directory or holds it"),
        (trained, "is the run folder or holds it"),
        (trained.parent, "is the run folder or holds it"),
        (trained / "model", "lies inside the run folder"),
    ):
        assert main(["export", f"run={trained}", f"out={out}", "override=test", "overwrite=true"]) == 1
        (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
        assert reason in line, line
    assert (tmp_path / "notes.txt").read_text() == "mine" and snapshot(trained) == before


def test_export_never_replaces_a_folder_it_did_not_write(trained, tmp_path, capsys):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("precious")
    for extra in ([], ["overwrite=true"]):
        assert main(["export", f"run={trained}", f"out={theirs}", "override=test", *extra]) == 1
        assert "tunewright never deletes what it did not write" in capsys.readouterr().err
    assert [p.name for p in theirs.iterdir()] == ["keep.txt"]


def test_an_earlier_export_is_replaced_only_when_asked(trained, tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()  # an empty folder the user made is filled
    assert main(["export", f"run={trained}", f"out={out}", "override=first"]) == 0
    first = (out / ".tunewright-export.json").read_text()
    assert main(["export", f"run={trained}", f"out={out}", "override=second"]) == 1
    assert "holds an earlier export; pass overwrite=true" in capsys.readouterr().err
    time.sleep(1.1)  # the marker records the export time to the second
    assert main(["export", f"run={trained}", f"out={out}", "override=second", "overwrite=true"]) == 0
    assert (out / ".tunewright-export.json").read_text() != first and (out / "README.md").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging or set-aside folder left


def test_another_config_cannot_rewrite_a_runs_record(trained, tiny_bert, capsys):
    before = snapshot(trained)
    overrides = tiny_run_overrides(
        tiny_bert, trained.parent, "paths.run_id=good", "audit=none", "trainer.learning_rate=0.5"
    )
    assert train_status(overrides) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        f"tunewright: paths.run_id=good: {trained} holds a run trained with another config "
        "(trainer.learning_rate: 0.001 -> 0.5)"
    )
    assert snapshot(trained) == before


def test_a_folder_of_other_files_is_never_trained_into(tiny_bert, tmp_path, capsys):
    folder = tmp_path / "runs" / "photos"
    folder.mkdir(parents=True)
    (folder / "holiday.jpg").write_bytes(b"\xff\xd8")
    assert train_status(tiny_run_overrides(tiny_bert, tmp_path / "runs", "paths.run_id=photos")) == 1
    assert "holds files that are not a tunewright run (holiday.jpg)" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["holiday.jpg"]


def test_a_failed_start_leaves_no_empty_run_folder(tiny_bert, tmp_path, capsys):
    runs = tmp_path / "runs"
    overrides = tiny_run_overrides(tiny_bert, runs, "data=csv", f"data.path={tmp_path / 'typo.csv'}")
    assert train_status(overrides) == 1
    assert f"{tmp_path / 'typo.csv'}: no such file" in capsys.readouterr().err
    assert not runs.exists() or list(runs.iterdir()) == []


def test_a_second_train_on_a_running_run_stops_naming_the_holder(tiny_bert, tmp_path):
    slow = slow_steps_plugin(tmp_path / "slow", 0.5)
    runs = tmp_path / "runs"
    command = [
        sys.executable,
        "-m",
        "tunewright",
        "train",
        *tiny_run_overrides(
            tiny_bert, runs, "paths.run_id=shared", "trainer.batch_size=4", "trainer.log_every_n_steps=1"
        ),
    ]
    first = subprocess.Popen(
        command,
        env=with_pythonpath(slow),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        while not (runs / "shared" / "metrics.jsonl").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, first.stderr.read().decode()
        second = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert second.returncode == 1
        (line,) = second.stderr.strip().splitlines()
        assert line.startswith(f"tunewright: {runs / 'shared'} is in use by tunewright train (pid {first.pid} on ")
    finally:
        first.wait(timeout=300)
    assert first.returncode == 0
    steps = [
        json.loads(line)["step"]
        for line in (runs / "shared" / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["event"] == "train"
    ]
    assert steps == sorted(set(steps))  # one writer: no step logged twice


HOLD_LOCK = """
import sys, time
from tunewright.run_folder import RunFolder
with RunFolder(sys.argv[1]).locked("tunewright monitor"):
    print("held", flush=True)
    time.sleep(3)
"""


def test_writers_of_one_run_take_turns(trained, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(trained)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        assert main(["card", f"run={trained}"]) == 0
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=60)
    assert (
        f"tunewright: waiting for {trained}, in use by tunewright monitor (pid {holder.pid}" in capsys.readouterr().err
    )
    assert waited > 1  # the card was written after the holder let go, not beside it


def test_rerunning_a_finished_run_keeps_what_later_commands_recorded(trained, tiny_bert, tmp_path):
    assert main(["export", f"run={trained}", f"out={tmp_path / 'shipped'}", "override=test"]) == 0
    exports = json.loads((trained / "manifest.json").read_text())["exports"]
    assert train_status(tiny_run_overrides(tiny_bert, trained.parent, "paths.run_id=good", "audit=none")) == 0
    manifest = json.loads((trained / "manifest.json").read_text())
    assert manifest["exports"] == exports and manifest["file_sha256"]
