"""A model and task small enough to reason about, speaking the trainer's protocols.

Used in-process by ``test_trainer.py`` and in ``torchrun`` workers by
``test_distributed.py``, so both compute exactly the same thing.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from omegaconf import OmegaConf

from tunewright import contracts
from tunewright.distributed import DistributedContext
from tunewright.run import Run
from tunewright.run_folder import RunFolder
from tunewright.schema import TrainerConfig
from tunewright.trainer import Trainer
from tunewright.zero import config as zero_config


class Linear(torch.nn.Module):
    """Logistic regression on 4 features (optionally with dropout to exercise RNG state)."""

    def __init__(self, scale: float = 1.0, dropout: float = 0.0):
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(4, 2)
        self.dropout = torch.nn.Dropout(dropout)
        self.scale = scale

    def forward(self, x):
        return SimpleNamespace(logits=self.layer(self.dropout(x)) * self.scale)


class Task(contracts.Task):
    @staticmethod
    def collate(features):
        return {"x": torch.stack([f["x"] for f in features]), "labels": torch.tensor([f["labels"] for f in features])}

    @staticmethod
    def loss_sum(logits, batch):
        return torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="sum")

    @staticmethod
    def loss_count(batch):
        return int(batch["labels"].numel())

    @staticmethod
    def metrics(logits, labels):
        return {"accuracy": float((logits.argmax(-1) == labels).mean())}


class Recorder:
    """A hook relay that records every call."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda **kwargs: self.calls.append((name, kwargs))


def features(n: int = 96, seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    return [{"x": row, "labels": int(row[0] + 0.5 * row[1] > 0)} for row in x]


def make_trainer(folder, model, context: DistributedContext | None = None, deepspeed: str = "zero2", **overrides):
    """A trainer for ``model`` on the CPU, in fp32 unless ``precision`` is given: the toy
    tests compare weights across batch splits and processes to 1e-6, which bf16 (what
    ``auto`` means on a CPU with native bf16) rounds away."""
    context = context or DistributedContext()
    options = {"device": "cpu", "progress_bar": False, "learning_rate": 0.1, "warmup_ratio": 0.0}
    options |= {"precision": "fp32", **overrides}
    cfg = OmegaConf.structured(TrainerConfig(**options))
    cfg.deepspeed.config = deepspeed  # read with strategy="deepspeed" only
    config = OmegaConf.create({"seed": 0, "model": {}, "method": {}, "data": {}, "trainer": cfg})
    run = Run("r", config, RunFolder(folder).create(), context.rank, context.world_size)
    hook = Recorder()
    deepspeed = None
    if cfg.strategy == "deepspeed":
        deepspeed = zero_config.resolve(cfg.deepspeed.config, cfg, context.world_size, cfg.precision)
    device = torch.device(options["device"])
    return Trainer(run, model, Task(), config.trainer, hook, context, device, deepspeed), hook


def weights(model) -> np.ndarray:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).numpy()
