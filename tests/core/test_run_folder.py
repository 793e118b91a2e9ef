"""Run identity and atomic writes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from omegaconf import OmegaConf

from tunewright.run_folder import RUN_ID_ENV, RunFolder, agree_on_run_id, atomic_write_text


@pytest.mark.distributed
def test_every_rank_under_torchrun_agrees_on_one_run_id(tmp_path):
    script = tmp_path / "agree.py"
    script.write_text(
        textwrap.dedent(
            """
            import time, torch.distributed as dist
            from omegaconf import OmegaConf
            from tunewright.run_folder import agree_on_run_id
            dist.init_process_group("gloo")
            time.sleep(dist.get_rank() * 1.1)  # ranks' clocks differ; ids must not
            cfg = OmegaConf.create({"paths": {"run_id": None}, "method": {"kind": "lora"}})
            print("RUN_ID", dist.get_rank(), agree_on_run_id(cfg), flush=True)
            dist.destroy_process_group()
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != RUN_ID_ENV}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    ids = {line.split()[1]: line.split()[2] for line in result.stdout.splitlines() if line.startswith("RUN_ID")}
    assert set(ids) == {"0", "1"}
    assert ids["0"] == ids["1"]


def test_configured_or_launcher_run_id_wins(monkeypatch):
    cfg = OmegaConf.create({"paths": {"run_id": None}, "method": {"kind": "lora"}})
    monkeypatch.setenv(RUN_ID_ENV, "from-launcher")
    assert agree_on_run_id(cfg) == "from-launcher"
    cfg.paths.run_id = "from-config"
    assert agree_on_run_id(cfg) == "from-config"


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "results.json"
    atomic_write_text(target, "old")

    with pytest.raises(TypeError):
        atomic_write_text(target, 12345)  # not text: the write fails midway
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_metrics_lines_append(tmp_path):
    folder = RunFolder(tmp_path).create()
    folder.append_metrics({"step": 1})
    folder.append_metrics({"step": 2})
    assert folder.metrics_path.read_text().splitlines() == ['{"step": 1}', '{"step": 2}']
