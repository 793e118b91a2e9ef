"""Real multi-process runs on this CPU: torchrun with the Gloo backend."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import tiny_run_overrides, torchrun
from toy import Linear, features, make_trainer, weights

pytestmark = pytest.mark.distributed  # torchrun with two processes

DDP_WORKER = textwrap.dedent(
    """
    import sys, numpy as np, torch
    from toy import Linear, features, make_trainer, weights
    from tunewright.distributed import setup, teardown
    context = setup(torch.device("cpu"))
    trainer, _ = make_trainer(sys.argv[1], Linear(), context, max_epochs=2, batch_size=int(sys.argv[2]),
                              gradient_accumulation_steps=int(sys.argv[3]))
    trainer.fit(features(), [])
    np.save(f"{sys.argv[1]}/weights-rank{context.rank}.npy", weights(trainer.model))
    del trainer  # its DDP wrapper holds the group: gone before the group, as in the CLI
    teardown()
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
    overrides = tiny_run_overrides(
        tiny_bert, tmp_path, "trainer=ddp", "trainer.nproc_per_node=2", "trainer.progress_bar=false"
    )
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


FSDP_WORKER = textwrap.dedent(
    """
    import sys, numpy as np, torch
    from toy import Linear, features, make_trainer
    from tunewright import sharding
    from tunewright.distributed import setup, teardown
    folder, stop = sys.argv[1], int(sys.argv[2])
    context = setup(torch.device("cpu"))
    trainer, _ = make_trainer(folder, Linear(dropout=0.2), context, strategy="fsdp", max_epochs=2, batch_size=8,
                              stop_after_steps=stop or None)
    result = trainer.fit(features(), features(16, seed=1))
    state = sharding.gather_full(trainer.model)
    if context.rank == 0:
        np.save(f"{folder}/weights.npy", torch.cat([state[k].flatten() for k in sorted(state)]).numpy())
        print("STEPS", result.steps, result.completed, result.resumed_from_step)
    del trainer  # its DDP wrapper holds the group: gone before the group, as in the CLI
    teardown()
    """
)


def test_fsdp_trains_checkpoints_and_resumes_exactly(tmp_path):
    script = tmp_path / "fsdp_worker.py"
    script.write_text(FSDP_WORKER)
    straight = torchrun(str(script), str(tmp_path / "straight"), "0")
    assert straight.returncode == 0, straight.stderr
    assert "STEPS 12 True None" in straight.stdout

    first = torchrun(str(script), str(tmp_path / "resumed"), "5")
    assert first.returncode == 0, first.stderr
    assert "STEPS 5 False None" in first.stdout
    second = torchrun(str(script), str(tmp_path / "resumed"), "0")
    assert second.returncode == 0, second.stderr
    assert "STEPS 12 True 5" in second.stdout
    np.testing.assert_array_equal(
        np.load(tmp_path / "straight" / "weights.npy"), np.load(tmp_path / "resumed" / "weights.npy")
    )


def test_train_with_fsdp_exports_a_loadable_model(tiny_bert, tmp_path):
    overrides = tiny_run_overrides(tiny_bert, tmp_path, "trainer=fsdp", "trainer.progress_bar=false")
    result = subprocess.run(
        [sys.executable, "-m", "tunewright", "train", *overrides], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    rows = [json.loads(line) for line in (folder / "test_predictions.jsonl").read_text().splitlines()]
    import tunewright

    predicted = tunewright.load_run(folder).predict([row["text"] for row in rows])
    assert [p["label"] for p in predicted] == [row["prediction"]["label"] for row in rows]


EVAL_WORKER = textwrap.dedent(
    """
    import sys, numpy as np, torch
    from toy import Linear, features, make_trainer
    from tunewright.distributed import setup, teardown
    context = setup(torch.device("cpu"))
    trainer, _ = make_trainer(sys.argv[1], Linear(), context)
    seen, collate = [], trainer.task.collate
    trainer.task.collate = lambda batch: seen.append(len(batch)) or collate(batch)
    metrics, logits = trainer.evaluate(features(37, seed=3))
    np.save(f"{sys.argv[1]}/logits-rank{context.rank}.npy", logits)
    print(f"RANK {context.rank} PREDICTED {sum(seen)}")
    del trainer  # its DDP wrapper holds the group: gone before the group, as in the CLI
    teardown()
    """
)


def test_ddp_ranks_share_evaluation_and_agree_with_one_process(tmp_path):
    """Each rank predicts every second example; gathered back in order, both ranks hold
    the logits one process computes for the whole split (37 examples: shares differ)."""
    script = tmp_path / "eval_worker.py"
    script.write_text(EVAL_WORKER)
    result = torchrun(str(script), str(tmp_path))
    assert result.returncode == 0, result.stderr
    single, _ = make_trainer(tmp_path / "single", Linear())
    _, expected = single.evaluate(features(37, seed=3))
    for rank in (0, 1):
        np.testing.assert_allclose(np.load(tmp_path / f"logits-rank{rank}.npy"), expected, rtol=0, atol=1e-6)
    assert "RANK 0 PREDICTED 19" in result.stdout and "RANK 1 PREDICTED 18" in result.stdout


def test_a_study_under_torchrun_trains_every_trial_on_all_ranks(tiny_bert, tmp_path):
    overrides = tiny_run_overrides(
        tiny_bert,
        tmp_path,
        "trainer=ddp",
        "audit=none",
        "monitor=none",
        "data.limit=100",
        "trainer.eval_every_n_steps=2",
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "tunewright",
            "tune",
            *overrides,
            "search.params.trainer.max_epochs=int 2 2",
            "tune.trials=3",
            "tune.startup_trials=1",
            "tune.pruner=median",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (study,) = tmp_path.glob("tune-*")  # one study folder, written by rank 0 alone
    record = json.loads((study / "study.json").read_text())
    assert len(record["trials"]) == 3 and {t["state"] for t in record["trials"]} <= {"complete", "pruned"}
    for trial in record["trials"]:
        manifest = json.loads((study / "trials" / trial["run_id"] / "manifest.json").read_text())
        assert manifest["world_size"] == 2
    assert result.stdout.count("tunewright tune: study folder") == 1


STOPPING_WORKER = textwrap.dedent(
    """
    import sys, torch
    from toy import Linear, features, make_trainer
    from tunewright.distributed import StoppedOnRankZero, setup, teardown
    context = setup(torch.device("cpu"))
    trainer, recorder = make_trainer(sys.argv[1], Linear(), context, max_epochs=2, batch_size=8, eval_every_n_steps=2)

    class StopsAtStepFour:  # a rank-0 plugin that ends the run at one evaluation (a pruner, say)
        def __getattr__(self, name):
            return getattr(recorder, name)

        def tunewright_eval_end(self, run, split, step, metrics):
            if step == 4:
                raise ValueError("enough at step 4")

    trainer.hook = StopsAtStepFour()
    try:
        trainer.fit(features(), features(16, seed=1))
    except (ValueError, StoppedOnRankZero) as error:
        print(f"RANK {context.rank} {type(error).__name__}: {error}", flush=True)
    del trainer  # its DDP wrapper holds the group: gone before the group, as in the CLI
    teardown()
    """
)


def test_a_stop_raised_by_a_rank_zero_hook_stops_every_rank(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(STOPPING_WORKER)
    result = torchrun(str(script), str(tmp_path), timeout=120)  # a rank left waiting would time out
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RANK 0 ValueError: enough at step 4" in result.stdout
    assert "RANK 1 StoppedOnRankZero: rank 0 stopped the run at this evaluation: enough at step 4" in result.stdout
