"""The DeepSpeed engine behind ``trainer.strategy=deepspeed``.

DeepSpeed is an optional dependency (``pip install -e '.[deepspeed]'``, see the README):
:func:`require_deepspeed` is called before any data or model loads, so a run without it
stops at once with the install command. On a machine without CUDA, DeepSpeed's CPU
accelerator is chosen (``DS_ACCELERATOR=cpu``, Gloo), which runs ZeRO stages 1-3 with
tunewright's own torch AdamW and optimizer offload with DeepSpeed's CPU Adam (compiled by
DeepSpeed on first use: a C++ compiler and ninja are needed).

Checkpoints: every rank writes its ZeRO partition through DeepSpeed's
``save_checkpoint`` into a folder that :mod:`tunewright.checkpoint` moves into the
atomic, hashed checkpoint; DeepSpeed reads them back through
:class:`WeightsOnlyCheckpointEngine`, which loads with ``torch.load(weights_only=True)``
and admits only the three plain DeepSpeed classes such a file holds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tunewright.checkpoint import CheckpointError, trained_tensors
from tunewright.errors import ConfigError
from tunewright.zero.config import ResolvedConfig

INSTALL_HINT = (
    "DS_BUILD_OPS=0 pip install --no-build-isolation -e '.[deepspeed]' (after the CPU torch, as scripts/setup.sh does)"
)
ENGINE_STATE_TAG = "state"  # DeepSpeed's name for the one checkpoint in each engine folder
# The non-tensor classes a ZeRO optimizer partition pickles (DeepSpeed 0.19), as "module.name".
CHECKPOINT_GLOBALS = (
    "deepspeed.runtime.fp16.loss_scaler.LossScaler",
    "deepspeed.runtime.zero.config.ZeroStageEnum",
    "deepspeed.utils.tensor_fragment.fragment_address",
)


def require_deepspeed() -> None:
    """Import DeepSpeed (on its CPU accelerator where CUDA is absent) or stop with the install command."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    try:
        import deepspeed  # noqa: F401
    except ImportError as error:
        raise ConfigError(
            f"trainer.strategy=deepspeed needs DeepSpeed, which is not installed ({error}); install it with: {INSTALL_HINT}"
        ) from None
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)  # its per-step INFO lines drown the run's own


def _checkpoint_globals() -> list[type]:
    import importlib

    found = []
    for dotted in CHECKPOINT_GLOBALS:
        module, _, name = dotted.rpartition(".")
        found.append(getattr(importlib.import_module(module), name))
    return found


def weights_only_engine(config_params):
    """A DeepSpeed checkpoint engine that reads with ``torch.load(weights_only=True)``."""
    from deepspeed.runtime.checkpoint_engine import TorchCheckpointEngine

    class WeightsOnlyCheckpointEngine(TorchCheckpointEngine):
        def load(self, path: str, map_location=None):
            try:
                with torch.serialization.safe_globals(_checkpoint_globals()):
                    return torch.load(path, map_location=map_location, weights_only=True)
            except Exception as error:  # pickle's own errors name no file
                raise CheckpointError(
                    f"{path}: not loadable with weights_only=True ({str(error).splitlines()[0]})"
                ) from None

    return WeightsOnlyCheckpointEngine(config_params)


def initialize(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    schedule: Callable[[torch.optim.Optimizer], Any],
    resolved: ResolvedConfig,
):
    """``deepspeed.initialize`` on ``model``: returns (engine, optimizer, scheduler).

    ``optimizer`` is tunewright's torch AdamW, or ``None`` when the config builds its own;
    ``schedule`` makes tunewright's learning-rate schedule for whichever optimizer
    DeepSpeed ends up stepping, which DeepSpeed then steps at each accumulation boundary.
    """
    import deepspeed

    parameters = [p for p in model.parameters() if p.requires_grad] if optimizer is None else None
    engine, engine_optimizer, _, scheduler = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        model_parameters=parameters,
        lr_scheduler=schedule,
        config=resolved.config,
        dist_init_required=False,  # tunewright has joined the process group already
    )
    engine.checkpoint_engine = weights_only_engine(engine._config)
    return engine, engine_optimizer, scheduler


def save_engine_state(engine, folder: Path) -> None:
    """Every rank writes its partition of weights and optimizer state into ``folder``
    (a collective: every rank calls). Frozen weights are left out: they are the
    pre-trained model's, loaded again on resume."""
    engine.save_checkpoint(str(folder), tag=ENGINE_STATE_TAG, save_latest=False, exclude_frozen_parameters=True)


def load_engine_state(engine, folder: Path) -> None:
    """Read back what :func:`save_engine_state` wrote: weights, optimizer, scheduler."""
    loaded, _ = engine.load_checkpoint(
        str(folder),
        tag=ENGINE_STATE_TAG,
        load_module_strict=False,  # the frozen weights were left out
        load_optimizer_states=True,
        load_lr_scheduler_states=True,
    )
    if loaded is None:
        raise CheckpointError(f"{folder}: DeepSpeed found no engine state to resume from")


# ---------------------------------------------------------------- ZeRO-3 partitioned weights


def is_partitioned(model: torch.nn.Module) -> bool:
    """ZeRO-3 holds each parameter as a partition (DeepSpeed marks them with ``ds_id``)."""
    return any(hasattr(p, "ds_id") for p in model.parameters())


def _gathered(parameters: list[torch.nn.Parameter], modifier_rank: int | None = None):
    import deepspeed

    return deepspeed.zero.GatheredParameters(parameters, modifier_rank=modifier_rank)


def gather(model: torch.nn.Module, trainable_only: bool) -> dict[str, torch.Tensor]:
    """Full CPU copies of the model's weights (every one, or what training changes),
    gathered one parameter at a time so no rank holds two full copies (every rank calls)."""
    tensors = trained_tensors(model) if trainable_only else dict(model.state_dict(keep_vars=True))
    state = {}
    for name, tensor in tensors.items():
        with _gathered([tensor] if hasattr(tensor, "ds_id") else []):
            state[name] = tensor.detach().cpu().clone()
    return state


def scatter_trainable(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load trainable weights into the partitions (every rank calls, each with the full
    ``state``: :func:`gather` and a checkpoint give every rank one; rank 0's is kept)."""
    tensors = trained_tensors(model)
    missing = sorted(name for name in tensors if name not in state)
    if missing:
        raise CheckpointError(f"checkpoint lacks trainable weights: {', '.join(missing[:5])}")
    for name, tensor in tensors.items():
        with _gathered([tensor] if hasattr(tensor, "ds_id") else [], modifier_rank=0), torch.no_grad():
            tensor.copy_(state[name])
