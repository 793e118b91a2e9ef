"""DeepSpeed ZeRO on this CPU, for real: two processes under torchrun (Gloo, DeepSpeed's
CPU accelerator), against DDP on the same toy model, and the whole ``tunewright train``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import tiny_run_overrides, torchrun

pytestmark = pytest.mark.distributed  # torchrun with two processes

# Dropout and two micro-batches per step: the RNG, the accumulation boundary and the
# loss scaling all have to agree with DDP's for the weights to.
WORKER = textwrap.dedent(
    """
    import sys, numpy as np, torch
    from toy import Linear, features, make_trainer
    from tunewright import sharding
    from tunewright.distributed import setup, teardown
    from tunewright.zero.engine import require_deepspeed
    folder, strategy, config, stop = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if strategy == "deepspeed":
        require_deepspeed()
    context = setup(torch.device("cpu"), group_of_one=strategy == "deepspeed")
    trainer, _ = make_trainer(folder, Linear(dropout=0.2), context, strategy=strategy, deepspeed=config,
                              max_epochs=2, batch_size=4, gradient_accumulation_steps=2,
                              stop_after_steps=stop or None)
    result = trainer.fit(features(), features(16, seed=1))
    state = sharding.gather_full(trainer.model)
    if context.rank == 0:
        np.save(f"{folder}/weights.npy", torch.cat([state[k].flatten() for k in sorted(state)]).numpy())
        print("STEPS", result.steps, result.completed, result.resumed_from_step, result.trainable_parameters)
    del trainer  # the engine holds the group: gone before the group, as in the CLI
    teardown()
    """
)


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    path = tmp_path_factory.mktemp("deepspeed") / "worker.py"
    path.write_text(WORKER)
    return str(path)


@pytest.fixture(scope="module")
def ddp_weights(worker, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    result = torchrun(worker, str(folder), "ddp", "-", "0")
    assert result.returncode == 0, result.stderr
    return np.load(folder / "weights.npy")


def train(worker, folder, config: str, stop: int = 0, nproc: int = 2) -> subprocess.CompletedProcess:
    return torchrun(worker, str(folder), "deepspeed", config, str(stop), nproc=nproc, timeout=600)


@pytest.mark.parametrize(
    ("config", "tolerance"),
    [("zero1", 1e-6), ("zero3", 1e-6), ("zero3_offload", 1e-5)],  # offload: DeepSpeed's own CPU Adam
)
def test_each_zero_stage_trains_the_weights_ddp_trains(worker, ddp_weights, tmp_path, config, tolerance):
    result = train(worker, tmp_path, config)
    assert result.returncode == 0, result.stderr
    assert "STEPS 12 True None 10" in result.stdout  # all 10 weights counted, partitioned or not
    np.testing.assert_allclose(np.load(tmp_path / "weights.npy"), ddp_weights, rtol=0, atol=tolerance)


def test_zero2_resumes_exactly_and_refuses_a_corrupt_or_foreign_partition(worker, ddp_weights, tmp_path):
    straight = train(worker, tmp_path / "straight", "zero2")
    assert straight.returncode == 0, straight.stderr
    np.testing.assert_allclose(np.load(tmp_path / "straight" / "weights.npy"), ddp_weights, rtol=0, atol=1e-6)

    first = train(worker, tmp_path / "resumed", "zero2", stop=5)
    assert first.returncode == 0, first.stderr
    assert "STEPS 5 False None" in first.stdout
    checkpoints = tmp_path / "resumed" / "checkpoints"
    (newest,) = [p for p in checkpoints.iterdir() if p.name == "step-00000005"]
    meta = json.loads((newest / "meta.json").read_text())
    partitions = sorted(name for name in meta["files"] if name.startswith("engine/") and "optim_states" in name)
    assert len(partitions) == 2  # one per rank, hashed like every file of the checkpoint
    assert not (newest / "optimizer.pt").exists()
    assert not list(checkpoints.glob(".engine-step-*"))  # the staging folder moved in

    # A corrupt partition is refused by name before DeepSpeed reads it.
    shutil.copytree(tmp_path / "resumed", tmp_path / "corrupt")
    partition = tmp_path / "corrupt" / "checkpoints" / "step-00000005" / partitions[1]
    partition.write_bytes(partition.read_bytes()[:-10])
    corrupt = train(worker, tmp_path / "corrupt", "zero2")
    assert corrupt.returncode != 0
    assert f"{partitions[1]} is corrupt" in corrupt.stderr

    # Partitions of two processes are refused by one, before any is read.
    shutil.copytree(tmp_path / "resumed", tmp_path / "alone")
    alone = train(worker, tmp_path / "alone", "zero2", nproc=1)
    assert alone.returncode != 0
    assert "holds ZeRO partitions of 2 processes" in alone.stderr and "launch 2 processes" in alone.stderr

    second = train(worker, tmp_path / "resumed", "zero2")
    assert second.returncode == 0, second.stderr
    assert "STEPS 12 True 5" in second.stdout
    np.testing.assert_array_equal(
        np.load(tmp_path / "straight" / "weights.npy"), np.load(tmp_path / "resumed" / "weights.npy")
    )


def test_train_with_zero3_records_its_config_and_exports_a_model_plain_peft_loads(tiny_bert, tmp_path):
    overrides = tiny_run_overrides(
        tiny_bert,
        tmp_path,
        "trainer=deepspeed",
        "trainer.deepspeed.config=zero3",
        "trainer.nproc_per_node=2",
        "trainer.precision=fp32",
    )
    result = subprocess.run(
        [sys.executable, "-m", "tunewright", "train", *overrides], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    record = json.loads((folder / "deepspeed.json").read_text())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["deepspeed"] == {"origin": "zero3", "sha256": record["sha256"], "stage": 3}
    assert manifest["world_size"] == 2
    assert record["config"]["train_batch_size"] == 16 * 2 and record["config"]["bf16"]["enabled"] is False
    results = json.loads((folder / "results.json").read_text())
    assert 0 < results["train"]["trainable_parameters"] < results["train"]["total_parameters"]

    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    # Gathered from the partitions on export: the adapter loads with plain transformers + peft.
    labels = json.loads((folder / "model" / "labels.json").read_text())
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=len(labels["label_names"]))
    adapted = PeftModel.from_pretrained(base, folder / "model")
    lora = {name: p for name, p in adapted.named_parameters() if "lora_B" in name}
    assert lora and all(p.abs().sum() > 0 for p in lora.values())  # trained (lora_B starts at zero)

    import tunewright

    rows = [json.loads(line) for line in (folder / "test_predictions.jsonl").read_text().splitlines()]
    predicted = tunewright.load_run(folder).predict([row["text"] for row in rows])
    assert [p["label"] for p in predicted] == [row["prediction"]["label"] for row in rows]
