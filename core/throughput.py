"""What the trainer reports of its own speed: parameter counts, peak memory and the
model FLOPs utilisation (MFU) estimate against a GPU's published peak."""

from __future__ import annotations

import os
import resource

import torch


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts (of the whole model, also when DeepSpeed ZeRO-3
    holds only a partition of each parameter here)."""

    def size(parameter: torch.nn.Parameter) -> int:
        return getattr(parameter, "ds_numel", None) or parameter.numel()

    trainable = sum(size(p) for p in model.parameters() if p.requires_grad)
    total = sum(size(p) for p in model.parameters())
    return trainable, total


def peak_memory_mb(device: torch.device) -> float:
    """The most this process has held: loading the model included."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # Linux reports KiB, and updates its high-water mark lazily: it can trail the resident
    # size by a few pages, so the peak is never shown under what is held now.
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, memory_mb(device))


def memory_mb(device: torch.device) -> float:
    """What this process holds now: the training state in steady state, which the peak
    hides when loading the whole model (as every process does before sharding) held more."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    with open("/proc/self/statm") as statm:  # pages: size, resident, ...
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# Dense bf16/fp16 tensor-core peak FLOP/s by GPU name, for the MFU estimate.
PEAK_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10": 125e12,
    "V100": 125e12,
    "T4": 65e12,
}


def model_flops_utilisation(tokens_per_second: float, parameters: int, device: torch.device) -> float | None:
    """Achieved over peak FLOP/s, counting 6 FLOPs per parameter per token (forward and
    backward); ``None`` off CUDA or on a GPU missing from :data:`PEAK_FLOPS`."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    peak = next((flops for key, flops in PEAK_FLOPS.items() if key in name), None)
    return 6 * parameters * tokens_per_second / peak if peak else None
