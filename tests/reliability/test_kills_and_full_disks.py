"""A run survives SIGKILL at any moment and a full disk without losing or faking anything.

The kill loop kills one run again and again (at random moments, mid-checkpoint
included) while it evaluates mid-epoch and checkpoints often; every restart resumes,
and the finished weights must equal a straight run's bit for bit. The full-disk case
trains into a file system too small for the run and expects one line naming the full
disk, no traceback, and no record that claims the run finished.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time

import pytest
from conftest import slow_steps_plugin, tiny_run_overrides, with_pythonpath
from safetensors.torch import load_file

pytestmark = pytest.mark.slow  # trains many runs or kills many processes

KILLS = int(os.environ.get("TUNEWRIGHT_FAULT_KILLS", "4"))  # docs/reliability.md measures 20


def train_command(tiny_bert, runs, run_id, *extra):
    overrides = tiny_run_overrides(
        tiny_bert,
        runs,
        "data.limit=120",
        "trainer.batch_size=4",
        "trainer.max_epochs=2",
        "trainer.eval_every_n_steps=5",
        "trainer.checkpoint_every_n_steps=3",
        "trainer.log_every_n_steps=1",
        "audit=none",
        "monitor=none",
        # The last weights, not the best evaluated ones: a tiny model's first evaluation is
        # often its best, which would hide a divergence after it.
        "trainer.select_best=false",
        f"paths.run_id={run_id}",
        *extra,
    )
    return [sys.executable, "-m", "tunewright", "train", *overrides]


def checkpoints(run):
    folder = run / "checkpoints"
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("step-")) if folder.is_dir() else []


def staging(run) -> set[str]:
    """The staging folders of checkpoints being written (or left by a killed writer)."""
    folder = run / "checkpoints"
    return {p.name for p in folder.iterdir() if p.name.startswith(".step-")} if folder.is_dir() else set()


def kill_at_a_moment(process, victim, mid_write: bool, rng) -> bool:
    """Wait for the moment, SIGKILL the process; whether a checkpoint was mid-write."""
    before, left, deadline = checkpoints(victim), staging(victim), time.monotonic() + 300
    if mid_write:  # the instant this process's next checkpoint has a staging folder
        while not staging(victim) - left and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
    else:  # anywhere from just after a checkpoint to mid-step after it
        while checkpoints(victim) == before and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.6))
    if process.poll() is not None:
        return False
    writing = staging(victim) - left
    process.send_signal(signal.SIGKILL)
    process.wait()
    return bool(writing) and not {name.split(".")[1] for name in writing} <= set(checkpoints(victim))


def test_a_run_killed_again_and_again_ends_with_the_straight_runs_weights(tiny_bert, tmp_path):
    slow = slow_steps_plugin(tmp_path / "slow", 0.15)
    runs, rng = tmp_path / "runs", random.Random(7)
    straight = subprocess.run(train_command(tiny_bert, runs, "straight"), capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr

    victim, kills, mid_write = runs / "killed", 0, 0
    for attempt in range(KILLS):
        process = subprocess.Popen(
            train_command(tiny_bert, runs, "killed"),
            env=with_pythonpath(slow),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        mid_write += kill_at_a_moment(process, victim, attempt % 2 == 1, rng)
        if process.returncode != -signal.SIGKILL:
            assert process.returncode == 0, process.stderr.read().decode()
            break  # the run finished before this kill
        kills += 1
        assert not (victim / "results.json").exists()
    assert kills >= min(KILLS, 3) and mid_write >= 1, f"{kills} kills, {mid_write} mid-checkpoint"
    print(f"kills: {kills}, of them mid-checkpoint: {mid_write}")

    resumed = subprocess.run(train_command(tiny_bert, runs, "killed"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    results = json.loads((victim / "results.json").read_text())
    assert results["train"]["resumed_from_step"] >= 3
    assert not [p for p in (victim / "checkpoints").iterdir() if p.name.startswith(".")]  # crashed staging removed
    expected = load_file(runs / "straight" / "model" / "adapter_model.safetensors")
    actual = load_file(victim / "model" / "adapter_model.safetensors")
    assert expected.keys() == actual.keys()
    for name in expected:
        assert (expected[name] == actual[name]).all(), name
    straight_results = json.loads((runs / "straight" / "results.json").read_text())
    assert results["test"] == straight_results["test"]

    def logged(run):  # what metrics.jsonl says was computed, without the timings
        lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [
            (r["event"], r["step"], r.get("split"), r.get("loss"), r.get("learning_rate"), r.get("accuracy"))
            for r in lines
        ]

    assert logged(victim) == logged(runs / "straight")  # each step once, with the straight run's numbers


def small_file_system(path, megabytes: int) -> bool:
    """Mount a tmpfs of ``megabytes`` at ``path`` when this process may (root); False if not."""
    path.mkdir(parents=True, exist_ok=True)
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", 0, f"size={megabytes}m".encode()) == 0


def unmount(path) -> None:
    ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).umount2(str(path).encode(), 2)  # MNT_DETACH


@pytest.mark.parametrize("limit", ["small_file_system", "file_size_limit"])
def test_a_full_disk_stops_the_run_with_one_line_and_no_finished_record(tiny_bert, tmp_path, limit):
    runs = tmp_path / "small"
    # A 3 MB tmpfs where this process may mount one (root), else (and as its own case)
    # a 2 MB file-size limit: full fine-tuning's ~4 MB of weights fit in neither.
    mounted = limit == "small_file_system" and small_file_system(runs, 3)
    command = train_command(tiny_bert, runs, "full", "method=full", "trainer.learning_rate=5e-5")
    cap = None if mounted else (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20)))
    try:
        failed = subprocess.run(command, capture_output=True, text=True, timeout=600, preexec_fn=cap)
        written = {p.relative_to(runs).as_posix() for p in runs.rglob("*") if p.is_file()}
    finally:
        if mounted:
            unmount(runs)
    assert failed.returncode == 1, failed.stderr
    (line,) = failed.stderr.strip().splitlines()
    expected = "the disk is full; free space" if mounted else "the file-size limit (ulimit -f) was reached"
    assert line.startswith(f"tunewright: {runs / 'full' / 'checkpoints'}/step-") and expected in line, line
    assert {"full/config.yaml", "full/manifest.json"} <= written and "full/results.json" not in written
    assert not [name for name in written if "/." in name and not name.endswith("/.lock")]  # no half-written staging
