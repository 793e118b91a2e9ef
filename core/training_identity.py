"""What a checkpoint is valid for: the part of a run's config that determines what is
computed. A resumed run must match it exactly; keys that change only how a run is
watched or launched (progress bars, logging, device, resume policy) are left out.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import OmegaConf

# Trainer keys that do not change what is computed, so a checkpoint stays valid across them.
RESUME_NEUTRAL_KEYS = (
    "resume",
    "resume_fallback",
    "stop_after_steps",
    "progress_bar",
    "log_every_n_steps",
    "keep_last_checkpoints",
    "nproc_per_node",
    "device",
    "eval_batch_size",
)


def training_identity(config) -> dict[str, Any]:
    """Everything in a config that determines the computation (what a checkpoint is
    valid for): model, method, data, seed and the trainer keys that are not neutral."""
    trainer = {
        k: v for k, v in OmegaConf.to_container(config.trainer, resolve=True).items() if k not in RESUME_NEUTRAL_KEYS
    }
    return {
        "model": OmegaConf.to_container(config.model, resolve=True),
        "method": OmegaConf.to_container(config.method, resolve=True),
        "data": OmegaConf.to_container(config.data, resolve=True),
        "trainer": trainer,
        "seed": config.seed,
    }


def training_config_hash(config, deepspeed: dict[str, Any] | None = None) -> str:
    """Hash of :func:`training_identity`, for checkpoint matching; with the resolved
    DeepSpeed config, whose file may change under an unchanged path. Its
    ``train_batch_size`` is left out: it counts processes, and a checkpoint written by
    another number of them is refused with that reason instead."""
    identity = training_identity(config)
    if deepspeed is not None:
        identity["deepspeed"] = {key: value for key, value in deepspeed.items() if key != "train_batch_size"}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def config_differences(stored, current) -> list[str]:
    """``key: stored -> current`` for every computation-relevant key two configs set differently."""

    def flat(value, prefix=""):
        if isinstance(value, dict):
            return {k: v for key, item in value.items() for k, v in flat(item, f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): value}

    old, new = flat(training_identity(stored)), flat(training_identity(current))
    return [
        f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]
