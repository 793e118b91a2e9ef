"""The loop's guarantees on a toy model: learning, accumulation equivalence, exact
resume, refused corrupt checkpoints, NaN watchdog, schedules, early stopping."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toy import Linear, features, make_trainer, weights

from tunewright.checkpoint import CheckpointError, list_checkpoints
from tunewright.errors import ConfigError
from tunewright.trainer import NonFiniteLossError, warmup_then_decay


def test_fit_learns_and_reports_each_step_and_epoch(tmp_path):
    trainer, hook = make_trainer(tmp_path, Linear(), max_epochs=3, batch_size=8, log_every_n_steps=1)
    result = trainer.fit(features(), features(32, seed=1))
    assert result.steps == 36 and result.completed
    steps = [kw["step"] for name, kw in hook.calls if name == "tunewright_train_step_end"]
    assert steps == list(range(1, 37))
    memory = [kw["metrics"] for name, kw in hook.calls if name == "tunewright_train_step_end"]
    assert all(0 < m["memory_mb"] <= m["peak_memory_mb"] for m in memory)  # resident now, at most the peak
    evals = [kw["metrics"]["accuracy"] for name, kw in hook.calls if name == "tunewright_eval_end"]
    assert len(evals) == 3 and max(evals) >= 0.8  # chance is 0.5
    assert [name for name, _ in hook.calls].count("tunewright_checkpoint_saved") == 3
    assert len(list_checkpoints(tmp_path / "checkpoints")) == 2  # keep_last_checkpoints


def test_accumulation_gives_the_update_of_one_big_batch(tmp_path):
    big, _ = make_trainer(tmp_path / "big", Linear(), max_epochs=2, batch_size=16)
    big.fit(features(), [])
    accumulated, _ = make_trainer(tmp_path / "acc", Linear(), max_epochs=2, batch_size=8, gradient_accumulation_steps=2)
    accumulated.fit(features(), [])
    np.testing.assert_allclose(weights(big.model), weights(accumulated.model), rtol=0, atol=1e-6)


def test_stop_and_resume_equals_a_straight_run(tmp_path):
    straight, hook_straight = make_trainer(
        tmp_path / "straight", Linear(dropout=0.3), max_epochs=2, batch_size=8, log_every_n_steps=1
    )
    straight.fit(features(), features(16, seed=1))

    first, _ = make_trainer(
        tmp_path / "resumed", Linear(dropout=0.3), max_epochs=2, batch_size=8, stop_after_steps=7, log_every_n_steps=1
    )
    partial = first.fit(features(), features(16, seed=1))
    assert not partial.completed and partial.steps == 7
    torch.manual_seed(123)  # a resumed process starts from other RNG states; the checkpoint restores them
    second, hook_resumed = make_trainer(
        tmp_path / "resumed", Linear(dropout=0.3), max_epochs=2, batch_size=8, log_every_n_steps=1
    )
    result = second.fit(features(), features(16, seed=1))
    assert result.completed and result.resumed_from_step == 7 and result.steps == 24

    np.testing.assert_array_equal(weights(straight.model), weights(second.model))
    losses = lambda hook: [kw["metrics"]["loss"] for n, kw in hook.calls if n == "tunewright_train_step_end"]  # noqa: E731
    assert losses(hook_resumed) == losses(hook_straight)[7:]


def test_a_truncated_checkpoint_is_refused_and_fallback_is_opt_in(tmp_path):
    trainer, _ = make_trainer(tmp_path, Linear(), max_epochs=3, batch_size=8)
    trainer.fit(features(), features(16, seed=1))
    older, newest = list_checkpoints(tmp_path / "checkpoints")
    weights_file = newest / "trainable.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:-10])

    again, _ = make_trainer(tmp_path, Linear(), max_epochs=3, batch_size=8)
    with pytest.raises(CheckpointError, match=r"trainable.safetensors is corrupt.*resume_fallback=true"):
        again.fit(features(), features(16, seed=1))
    fallback, _ = make_trainer(tmp_path, Linear(), max_epochs=3, batch_size=8, resume_fallback=True)
    result = fallback.fit(features(), features(16, seed=1))
    assert result.resumed_from_step == int(older.name.split("-")[1])


def test_a_checkpoint_from_another_config_is_refused(tmp_path):
    trainer, _ = make_trainer(tmp_path, Linear(), max_epochs=1, batch_size=8)
    trainer.fit(features(), features(16, seed=1))
    other, _ = make_trainer(tmp_path, Linear(), max_epochs=1, batch_size=8, learning_rate=0.5)
    with pytest.raises(CheckpointError, match="different training config"):
        other.fit(features(), features(16, seed=1))


def test_nan_stops_at_its_step_and_keeps_the_previous_checkpoint(tmp_path):
    model = Linear()
    trainer, _ = make_trainer(tmp_path, model, max_epochs=2, batch_size=8, checkpoint_every_n_steps=4)
    poisoned = features()
    poisoned[5 * 8 + 3]["x"] = torch.full((4,), float("nan"))  # somewhere in a later step
    with pytest.raises(NonFiniteLossError, match=r"step \d+: loss=nan") as caught:
        trainer.fit(poisoned, [])
    failed_step = int(str(caught.value).split()[1].rstrip(":"))
    (last,) = list_checkpoints(tmp_path / "checkpoints")[-1:]
    assert int(last.name.split("-")[1]) == 4 * ((failed_step - 1) // 4)
    resumed, _ = make_trainer(tmp_path, Linear(), max_epochs=2, batch_size=8, checkpoint_every_n_steps=4)
    with pytest.raises(NonFiniteLossError):
        resumed.fit(poisoned, [])  # the checkpoint loads fine; the data is still poisoned


def test_early_stopping_exports_the_best_weights(tmp_path):
    trainer, hook = make_trainer(
        tmp_path,
        Linear(),
        max_epochs=30,
        batch_size=8,
        eval_every_n_steps=2,
        early_stopping_patience=2,
        early_stopping_metric="accuracy",
        learning_rate=2.0,
    )
    result = trainer.fit(features(), features(32, seed=1))
    evals = [kw for name, kw in hook.calls if name == "tunewright_eval_end"]
    assert result.steps < 30 * 12  # it stopped early
    assert result.best_metric == max(e["metrics"]["accuracy"] for e in evals)
    metrics, _ = trainer.evaluate(features(32, seed=1))
    assert metrics["accuracy"] == result.best_metric


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_schedules_warm_up_then_decay_to_zero(schedule):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = warmup_then_decay(optimizer, warmup_steps=2, total_steps=6, schedule=schedule)
    rates = []
    for _ in range(6):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[:2] == [0.5, 1.0]
    assert rates[2:] == sorted(rates[2:], reverse=True) and np.isclose(scheduler.get_last_lr()[0], 0.0)


def test_bf16_autocast_trains_on_the_cpu(tmp_path):
    trainer, hook = make_trainer(tmp_path, Linear(), max_epochs=2, batch_size=8, precision="bf16", log_every_n_steps=1)
    result = trainer.fit(features(), features(32, seed=1))
    losses = [kw["metrics"]["loss"] for name, kw in hook.calls if name == "tunewright_train_step_end"]
    assert result.completed and all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_fp16_without_cuda_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="trainer.precision=fp16 needs a CUDA device"):
        make_trainer(tmp_path, Linear(), precision="fp16")


def test_compiled_model_computes_the_same_update(tmp_path):
    eager, _ = make_trainer(tmp_path / "eager", Linear(), max_epochs=1, batch_size=16)
    eager.fit(features(), [])
    compiled, _ = make_trainer(tmp_path / "compiled", Linear(), max_epochs=1, batch_size=16, compile=True)
    compiled.fit(features(), [])
    np.testing.assert_allclose(weights(eager.model), weights(compiled.model), rtol=0, atol=1e-5)


def test_the_last_step_is_evaluated_even_off_the_interval(tmp_path):
    trainer, hook = make_trainer(tmp_path, Linear(), max_epochs=1, batch_size=8, eval_every_n_steps=5)
    result = trainer.fit(features(), features(16, seed=1))  # 96 examples: 12 steps
    steps = [kw["step"] for name, kw in hook.calls if name == "tunewright_eval_end"]
    assert result.steps == 12 and steps == [5, 10, 12]
