"""Real multi-process runs on this CPU: torchrun with the Gloo backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from conftest import tiny_run_overrides
from toy import Linear, features, make_trainer, weights

TESTS = Path(__file__).parent


def torchrun(script: str, *args: str, nproc: int = 2, timeout: int = 300) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", script, *args],
        capture_output=True, text=True, env=environment, timeout=timeout,
    )  # fmt: skip


DDP_WORKER = textwrap.dedent(
    """
    import sys, numpy as np, torch, torch.distributed as dist
    from toy import Linear, features, make_trainer, weights
    from tunewright.distributed import setup
    context = setup(torch.device("cpu"))
    trainer, _ = make_trainer(sys.argv[1], Linear(), context, max_epochs=2, batch_size=int(sys.argv[2]),
                              gradient_accumulation_steps=int(sys.argv[3]))
    trainer.fit(features(), [])
    np.save(f"{sys.argv[1]}/weights-rank{context.rank}.npy", weights(trainer.model))
    dist.destroy_process_group()
    """
)


def test_two_ranks_with_batch_b_equal_one_process_with_batch_2b(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(DDP_WORKER)
    result = torchrun(str(script), str(tmp_path), "8", "1")
    assert result.returncode == 0, result.stderr
    rank0, rank1 = (np.load(tmp_path / f"weights-rank{r}.npy") for r in (0, 1))
    np.testing.assert_array_equal(rank0, rank1)

    single, _ = make_trainer(tmp_path / "single", Linear(), max_epochs=2, batch_size=16)
    single.fit(features(), [])
    np.testing.assert_allclose(rank0, weights(single.model), rtol=0, atol=1e-6)


def test_two_ranks_with_accumulation_equal_one_big_batch(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(DDP_WORKER)
    result = torchrun(str(script), str(tmp_path), "4", "2")
    assert result.returncode == 0, result.stderr
    single, _ = make_trainer(tmp_path / "single", Linear(), max_epochs=2, batch_size=16)
    single.fit(features(), [])
    np.testing.assert_allclose(np.load(tmp_path / "weights-rank0.npy"), weights(single.model), rtol=0, atol=1e-6)


def test_train_launches_itself_with_ddp_into_one_run_folder(tiny_bert, tmp_path):
    overrides = tiny_run_overrides(tiny_bert, tmp_path, "trainer=ddp", "trainer.nproc_per_node=2", "trainer.progress_bar=false")
    result = subprocess.run(
        [sys.executable, "-m", "tunewright", "train", *overrides], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    results = json.loads((folder / "results.json").read_text())
    assert results["completed"] and results["test"]["accuracy"] >= 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["world_size"] == 2
    assert result.stdout.count("run folder:") == 1  # only rank 0 prints
    assert (folder / "model" / "adapter_model.safetensors").is_file()
