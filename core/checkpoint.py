"""Training checkpoints: everything an exact resume needs, written atomically.

A checkpoint is a folder ``checkpoints/step-<N>/`` holding

* ``trainable.safetensors``: the trainable weights (the adapter and head for LoRA,
  every weight for full fine-tuning), and ``best.safetensors``, the best evaluated
  ones, when they differ;
* ``optimizer.pt``, ``scheduler.pt``: their state dicts, read back with
  ``torch.load(weights_only=True)``; under DeepSpeed, ``engine/`` instead holds every
  rank's ZeRO partition of weights and optimizer state as DeepSpeed wrote it (read back
  with ``weights_only=True`` too, see :mod:`tunewright.zero.engine`);
* ``rng.pt`` and ``rng.json``: the torch, CUDA, Python and NumPy RNG states of every rank;
* ``meta.json``: the step, the training-config hash, the early-stopping state and the
  SHA-256 of every file above (by path within the checkpoint).

It is written under a temporary name and renamed into place, so a crash leaves either
a whole checkpoint or none. On load every file's hash is checked: a truncated or
altered checkpoint is refused with the reason, never half-loaded.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tunewright.data import file_sha256
from tunewright.errors import TunewrightError
from tunewright.run_folder import atomic_directory

META = "meta.json"
WEIGHTS = "trainable.safetensors"
BEST_WEIGHTS = "best.safetensors"
PREFIX = "step-"
ENGINE_FOLDER = "engine"
ENGINE_STAGING_PREFIX = ".engine-step-"  # where every rank writes DeepSpeed's state before it moves in


class CheckpointError(TunewrightError):
    """A checkpoint is corrupt or does not belong to this run's config."""


@dataclass
class Checkpoint:
    path: Path
    meta: dict[str, Any]

    @property
    def step(self) -> int:
        return self.meta["step"]


def capture_rng_state() -> dict[str, Any]:
    """This process's RNG states, split into tensors and JSON-able values."""
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    return {
        "tensors": {
            "torch": torch.get_rng_state(),
            **({"cuda": torch.cuda.get_rng_state()} if torch.cuda.is_available() else {}),
        },
        "json": {
            "python": [python_state[0], list(python_state[1]), python_state[2]],
            "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        },
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["tensors"]["torch"])
    if "cuda" in state["tensors"] and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["tensors"]["cuda"])
    version, internal, gauss = state["json"]["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = state["json"]["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))


def trained_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What training changes: the trainable parameters, and the running statistics of
    the normalisation layers that train (a ResNet block's BatchNorm)."""
    trained = {name: p for name, p in model.named_parameters() if p.requires_grad}
    for module_name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and any(
            p.requires_grad for p in module.parameters()
        ):
            trained.update({f"{module_name}.{name}": buffer for name, buffer in module.named_buffers()})
    return trained


def freeze_frozen_statistics(model: torch.nn.Module) -> None:
    """Keep the running statistics of frozen BatchNorm layers as pre-trained (momentum 0):
    a method that saves only what it trained must not let them drift unsaved."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and not any(
            p.requires_grad for p in module.parameters()
        ):
            module.momentum = 0.0


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().cpu().clone() for name, t in trained_tensors(model).items()}


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    tensors = trained_tensors(model)
    missing = sorted(name for name in tensors if name not in state)
    if missing:
        raise CheckpointError(f"checkpoint lacks trainable weights: {', '.join(missing[:5])}")
    with torch.no_grad():
        for name, tensor in state.items():
            tensors[name].copy_(tensor)


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as error:
        raise CheckpointError(f"{path}: unreadable weights ({error})") from None


def save_checkpoint(
    directory: Path,
    step: int,
    weights: dict[str, torch.Tensor],
    optimizer_state: dict,
    scheduler_state: dict,
    rng_states: list[dict[str, Any]],
    meta: dict[str, Any],
    keep_last: int,
    best_weights: dict[str, torch.Tensor] | None = None,
    engine_folder: Path | None = None,
) -> Path:
    """Write ``directory/step-<step>`` atomically and prune all but the newest ``keep_last``.

    ``best_weights``, the best evaluated weights so far when they are not ``weights``
    themselves, travel in the same folder so that any checkpoint resumes exactly.
    ``engine_folder``, what DeepSpeed wrote (on the same file system), is moved in as
    ``engine/``; ``optimizer_state`` is then ``None``, the optimizer being in there.
    """
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{PREFIX}{step:08d}"
    with atomic_directory(final) as staging:
        save_file(weights, str(staging / WEIGHTS))
        if best_weights is not None:
            save_file(best_weights, str(staging / BEST_WEIGHTS))
        if optimizer_state is not None:
            torch.save(optimizer_state, staging / "optimizer.pt")
        if engine_folder is not None:
            os.replace(engine_folder, staging / ENGINE_FOLDER)
        torch.save(scheduler_state, staging / "scheduler.pt")
        torch.save([state["tensors"] for state in rng_states], staging / "rng.pt")
        (staging / "rng.json").write_text(json.dumps([state["json"] for state in rng_states]))
        files = {
            path.relative_to(staging).as_posix(): file_sha256(path)
            for path in sorted(staging.rglob("*"))
            if path.is_file()
        }
        (staging / META).write_text(json.dumps({**meta, "step": step, "files": files}, indent=2))
    for old in list_checkpoints(directory)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old)
    return final


def remove_engine_staging(directory: Path) -> None:
    """Remove the DeepSpeed staging folders a killed save left (tunewright's own, by name)."""
    if directory.is_dir():
        for leftover in directory.glob(f"{ENGINE_STAGING_PREFIX}*"):
            shutil.rmtree(leftover)


def list_checkpoints(directory: Path) -> list[Path]:
    """Finished checkpoint folders, oldest first (temporary folders are ignored)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def verify(path: Path, config_hash: str) -> Checkpoint:
    """Read ``meta.json`` and check every file's hash and the config hash."""
    meta_path = path / META
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path}: unreadable {META} ({error})") from None
    for name, expected in meta.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint {path}: {name} is missing")
        if file_sha256(file) != expected:
            raise CheckpointError(f"checkpoint {path}: {name} is corrupt (its SHA-256 does not match {META})")
    if meta.get("config_hash") != config_hash:
        raise CheckpointError(
            f"checkpoint {path} was written with a different training config "
            f"(hash {meta.get('config_hash', '?')[:12]}, this run {config_hash[:12]}); "
            "start a new run folder or restore the config it was written with"
        )
    return Checkpoint(path, meta)


def find_resumable(directory: Path, config_hash: str, fall_back: bool) -> Checkpoint | None:
    """The newest valid checkpoint, or ``None`` when there are no checkpoints.

    A newest checkpoint that fails verification is an error, unless ``fall_back`` is
    set, in which case older ones are tried in turn; if none is valid that is an error
    too, since starting afresh would prune them.
    """
    problems = []
    for path in reversed(list_checkpoints(directory)):
        try:
            return verify(path, config_hash)
        except CheckpointError as error:
            if not fall_back:
                raise CheckpointError(
                    f"{error}. Set trainer.resume_fallback=true to resume from an older valid checkpoint"
                ) from None
            problems.append(str(error))
    if problems:
        raise CheckpointError(f"no valid checkpoint in {directory}: {'; '.join(problems)}")
    return None


def read_checkpoint(checkpoint: Checkpoint, rank: int) -> dict[str, Any]:
    """The weights (and best weights, if any), optimizer and scheduler states, and this
    rank's RNG states."""
    path = checkpoint.path
    tensors = torch.load(path / "rng.pt", weights_only=True)
    json_states = json.loads((path / "rng.json").read_text())
    if rank >= len(tensors):
        raise CheckpointError(f"checkpoint {path} holds RNG states for {len(tensors)} ranks, not rank {rank}")
    weights = load_weights(path / WEIGHTS)
    if (path / BEST_WEIGHTS).is_file():
        best = load_weights(path / BEST_WEIGHTS)
    else:
        best = weights if checkpoint.meta.get("best_step") == checkpoint.step else None
    return {
        "weights": weights,
        "best_weights": best,
        "optimizer": torch.load(path / "optimizer.pt", weights_only=True)
        if (path / "optimizer.pt").is_file()
        else None,
        "scheduler": torch.load(path / "scheduler.pt", weights_only=True),
        "rng": {"tensors": tensors[rank], "json": json_states[rank]},
    }
