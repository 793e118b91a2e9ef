"""The loop's own guarantees, on a model small enough to reason about."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tunewright.run import Run
from tunewright.run_folder import RunFolder
from tunewright.schema import TrainerConfig
from tunewright.trainer import NonFiniteLossError, Trainer, linear_warmup_decay


class Linear(torch.nn.Module):
    """A logistic regression that speaks the transformers forward protocol."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.layer = torch.nn.Linear(2, 2)
        self.scale = scale

    def forward(self, x, labels=None):
        logits = self.layer(x) * self.scale
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SimpleNamespace(loss=loss, logits=logits)


class Task:
    @staticmethod
    def collate(features):
        return {"x": torch.stack([f["x"] for f in features]), "labels": torch.tensor([f["labels"] for f in features])}

    @staticmethod
    def metrics(logits, labels):
        return {"accuracy": float((logits.argmax(-1) == labels).mean())}


class Recorder:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda **kwargs: self.calls.append((name, kwargs))


def features(n=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=generator)
    return [{"x": row, "labels": int(row[0] > 0)} for row in x]


def make_trainer(tmp_path, model, **overrides):
    cfg = OmegaConf.structured(TrainerConfig(device="cpu", progress_bar=False, learning_rate=0.1, **overrides))
    run = Run("r", OmegaConf.create({"seed": 0}), RunFolder(tmp_path))
    hook = Recorder()
    return Trainer(run, model, Task(), cfg, hook), hook


def test_fit_learns_and_reports_each_step_and_epoch(tmp_path):
    trainer, hook = make_trainer(tmp_path, Linear(), max_epochs=3, batch_size=8, log_every_n_steps=1)
    result = trainer.fit(features(), features(32, seed=1))
    assert result.steps == 24
    steps = [kw["step"] for name, kw in hook.calls if name == "tunewright_train_step_end"]
    assert steps == list(range(1, 25))
    evals = [kw["metrics"]["accuracy"] for name, kw in hook.calls if name == "tunewright_eval_end"]
    assert len(evals) == 3 and evals[-1] >= 0.8  # chance is 0.5


def test_same_seed_same_weights(tmp_path):
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        trainer, _ = make_trainer(tmp_path, Linear(), max_epochs=1, batch_size=8)
        trainer.fit(features(), [])
        weights.append(trainer.model.layer.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


def test_non_finite_loss_stops_with_the_step(tmp_path):
    trainer, _ = make_trainer(tmp_path, Linear(scale=float("nan")), max_epochs=1, batch_size=8)
    with pytest.raises(NonFiniteLossError, match="step 1: loss=nan"):
        trainer.fit(features(), [])


def test_schedule_warms_up_then_decays_to_zero():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = linear_warmup_decay(optimizer, warmup_steps=2, total_steps=6)
    rates = []
    for _ in range(6):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[:2] == [0.5, 1.0]
    assert rates[2:] == sorted(rates[2:], reverse=True) and np.isclose(scheduler.get_last_lr()[0], 0.0)
