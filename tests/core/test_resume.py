"""Exact resume of a real run after its process is killed with SIGKILL mid-training."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from conftest import slow_steps_plugin, tiny_run_overrides, with_pythonpath
from safetensors.torch import load_file


def train_command(tiny_bert, runs, run_id):
    overrides = tiny_run_overrides(
        tiny_bert,
        runs,
        "data.limit=120",
        "trainer.batch_size=4",
        "trainer.max_epochs=2",
        "trainer.checkpoint_every_n_steps=4",
        "trainer.log_every_n_steps=1",
        f"paths.run_id={run_id}",
    )
    return [sys.executable, "-m", "tunewright", "train", *overrides]


def test_sigkill_mid_run_then_resume_gives_the_straight_run(tiny_bert, tmp_path):
    slow = slow_steps_plugin(tmp_path / "slow", 0.25)
    runs = tmp_path / "runs"

    straight = subprocess.run(train_command(tiny_bert, runs, "straight"), capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr

    victim = subprocess.Popen(
        train_command(tiny_bert, runs, "killed"),
        env=with_pythonpath(slow),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    checkpoint = runs / "killed" / "checkpoints" / "step-00000008"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert checkpoint.exists(), victim.stderr.read().decode() if victim.poll() is not None else "timed out"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (runs / "killed" / "results.json").exists()

    resumed = subprocess.run(train_command(tiny_bert, runs, "killed"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    resumed_from = json.loads((runs / "killed" / "results.json").read_text())["train"]["resumed_from_step"]
    assert resumed_from >= 8

    expected = load_file(runs / "straight" / "model" / "adapter_model.safetensors")
    actual = load_file(runs / "killed" / "model" / "adapter_model.safetensors")
    assert expected.keys() == actual.keys()
    for name in expected:
        assert (expected[name] == actual[name]).all(), name
