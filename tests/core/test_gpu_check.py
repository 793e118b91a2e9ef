"""The GPU check script, run with ``--smoke`` on the CPU so it cannot rot before a GPU
is lent: every part runs or says why not, and both trainers see the same tokens."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # three training processes and a torchrun

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "gpu_check.py"


def test_the_smoke_run_measures_both_trainers_on_the_same_tokens(tmp_path):
    out = tmp_path / "summary.json"
    subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)], check=True, timeout=600)
    summary = json.loads(out.read_text())
    assert summary["smoke"] is True and summary["device"] == "cpu"
    lora = summary["lora_bf16"]
    expected_tokens = summary["train_rows"] * summary["sequence_tokens"]  # every example truncated to length
    for trainer in ("tunewright", "hf_trainer_peft"):
        assert lora[trainer]["tokens"] == expected_tokens, trainer
        assert lora[trainer]["tokens_per_second"] > 0 and lora[trainer]["steps"] == 4
    assert lora["tokens_per_second_ratio"] == pytest.approx(
        lora["tunewright"]["tokens_per_second"] / lora["hf_trainer_peft"]["tokens_per_second"]
    )
    assert "bitsandbytes, which needs a CUDA GPU" in summary["qlora"]["error"]  # recorded, not fatal
    assert summary["fsdp2"]["tokens"] == expected_tokens and summary["fsdp2"]["steps"] == 4
    # DeepSpeed is installed by setup: ZeRO-3 runs here on its CPU accelerator.
    assert summary["deepspeed_zero3"]["tokens"] == expected_tokens and summary["deepspeed_zero3"]["steps"] == 4
    assert "targets" not in summary  # speed targets are judged on a GPU only
