"""FSDP2 (``fully_shard``) for ``trainer.strategy=fsdp``, and state dicts that work the
same for sharded and unsharded models (DeepSpeed ZeRO-3's partitions included, through
:mod:`tunewright.zero.engine`).

Wrapping policy: every transformer block is its own FSDP unit, then the root. The block
classes come from the model itself: transformers lists them in ``_no_split_modules``
(``BertLayer``, ``LlamaDecoderLayer``, ``T5Block``, ``ViTLayer``, ...), which is exactly
the unit that must not be split across devices. A model without that list is sharded
as one unit.

Weights and optimizer state are gathered to full tensors on rank 0 for checkpoints and
export (``torch.distributed.checkpoint.state_dict``), and loaded back by broadcasting
from rank 0, so a checkpoint is an ordinary file whichever strategy wrote it.
"""

from __future__ import annotations

import torch

from tunewright.checkpoint import load_trainable_state, trainable_state
from tunewright.zero import engine as zero_engine


def is_fsdp(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def is_sharded(model: torch.nn.Module) -> bool:
    """No rank holds the whole model: FSDP2, or DeepSpeed ZeRO-3. Every rank then takes
    part in every forward pass."""
    return is_fsdp(model) or zero_engine.is_partitioned(model)


# Attribute names transformers gives the list of repeated blocks, for models whose
# ``_no_split_modules`` is unset (wav2vec2, HuBERT, ...).
BLOCK_LIST_NAMES = ("layer", "layers", "blocks", "h")


def block_classes(model: torch.nn.Module) -> set[str]:
    """Class names of the model's transformer blocks: transformers' ``_no_split_modules``
    where the model lists them, else the classes in its block list (``encoder.layers``)."""
    for module in model.modules():
        names = getattr(module, "_no_split_modules", None)
        if names:
            return set(names)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and name.rsplit(".", 1)[-1] in BLOCK_LIST_NAMES and len(module):
            return {type(block).__name__ for block in module}
    return set()


def shard(model: torch.nn.Module) -> torch.nn.Module:
    """Apply ``fully_shard`` to every block, then to the root; returns the same module.

    Parameters stay fp32 (the trainer's autocast handles bf16/fp16 compute).
    """
    from torch.distributed.fsdp import fully_shard

    blocks = block_classes(model)
    for module in list(model.modules()):
        if type(module).__name__ in blocks:
            fully_shard(module)
    fully_shard(model)
    return model


def _full_options(**extra):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True, **extra)


def gather_trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Trainable weights as full CPU tensors (on rank 0 only under FSDP; every rank calls)."""
    if zero_engine.is_partitioned(model):
        return zero_engine.gather(model, trainable_only=True)
    if not is_fsdp(model):
        return trainable_state(model)
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_full_options(ignore_frozen_params=True))


def gather_full(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every weight as full CPU tensors (on rank 0 only under FSDP; every rank calls)."""
    if zero_engine.is_partitioned(model):
        return zero_engine.gather(model, trainable_only=False)
    if not is_fsdp(model):
        return {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_full_options())


def load_trainable(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load trainable weights; under FSDP, rank 0's ``state`` is broadcast (every rank calls)."""
    if zero_engine.is_partitioned(model):
        zero_engine.scatter_trainable(model, state)
        return
    if not is_fsdp(model):
        load_trainable_state(model, state)
        return
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(model, state, options=_full_options(strict=False, broadcast_from_rank0=True))


def gather_optimizer(model: torch.nn.Module, optimizer) -> dict:
    """The optimizer's state dict, gathered to rank 0 under FSDP (every rank calls)."""
    if not is_fsdp(model):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_full_options())


def load_optimizer(model: torch.nn.Module, optimizer, state: dict) -> None:
    if not is_fsdp(model):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=_full_options(broadcast_from_rank0=True))
