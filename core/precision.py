"""Where a run computes and in which number format: the device ``trainer.device`` names
and the autocast dtype ``trainer.precision`` asks for.

Training, evaluation, prediction and the audits all read these two functions, so a
reloaded model predicts in the precision it was evaluated in.
"""

from __future__ import annotations

import contextlib

import torch

from tunewright.errors import ConfigError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``trainer.precision``; ``None`` means full fp32.

    ``auto`` is bf16 on a CUDA device that has it, fp16 (with a gradient scaler) on one
    that does not, and fp32 on the CPU.
    """
    choices = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision not in choices:
        raise ConfigError(f"trainer.precision: {precision!r} is not one of auto, {', '.join(choices)}")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("trainer.precision=fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    return choices[precision]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype``, or nothing when the run computes in fp32."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
