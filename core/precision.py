"""Where a run computes and in which number format: the device ``trainer.device`` names
and the autocast dtype ``trainer.precision`` asks for.

Training, evaluation, prediction and the audits all read these functions, and the run
records which precision ran and why (``manifest.json``), so a reloaded model predicts
in the precision it was evaluated in.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch

from tunewright.errors import ConfigError

CPU_INFO = Path("/proc/cpuinfo")
# CPU flags that mean bf16 matrix products run in hardware: x86's AVX512-BF16 and AMX,
# Arm's BF16 extension. Without them oneDNN emulates bf16, slower than fp32.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run computes in: its name (``fp32``, ``bf16``, ``fp16``), the
    autocast dtype (``None`` for fp32), the device type it was chosen for and the
    reason, in words, for the record."""

    name: str
    dtype: torch.dtype | None
    device: str
    reason: str


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def native_bf16_flags(cpu_info: Path | None = None) -> list[str]:
    """The flags of :data:`NATIVE_BF16_FLAGS` the CPU reports in ``cpu_info`` (default
    :data:`CPU_INFO`); none where the kernel does not say, as off Linux."""
    try:
        text = (cpu_info or CPU_INFO).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    reported: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            reported.update(value.split())
    return [flag for flag in NATIVE_BF16_FLAGS if flag in reported]


def choose_precision(precision: str, device: torch.device) -> PrecisionChoice:
    """What ``trainer.precision`` means on ``device``.

    ``auto`` is bf16 on a CUDA device that has it, fp16 (with a gradient scaler) on one
    that does not; on the CPU, bf16 where the CPU computes it natively (see
    :func:`native_bf16_flags`: about 1.8x the fp32 tokens/s for LoRA on an AVX512-BF16
    CPU at equal accuracy) and fp32 elsewhere, where emulated bf16 is many times slower.
    """
    if precision not in ("auto", *DTYPES):
        raise ConfigError(f"trainer.precision: {precision!r} is not one of auto, {', '.join(DTYPES)}")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("trainer.precision=fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    if precision != "auto":
        return PrecisionChoice(precision, DTYPES[precision], device.type, f"configured: trainer.precision={precision}")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", torch.bfloat16, "cuda", "auto: this CUDA device computes bf16")
        return PrecisionChoice(
            "fp16", torch.float16, "cuda", "auto: this CUDA device lacks bf16; fp16 with a gradient scaler"
        )
    if device.type == "cpu":
        flags = native_bf16_flags()
        if flags:
            return PrecisionChoice(
                "bf16", torch.bfloat16, "cpu", f"auto: this CPU computes bf16 natively ({', '.join(flags)})"
            )
        return PrecisionChoice(
            "fp32", None, "cpu", f"auto: this CPU has no native bf16 ({', '.join(NATIVE_BF16_FLAGS)} absent), so fp32"
        )
    return PrecisionChoice("fp32", None, device.type, f"auto: fp32 on a {device.type} device")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of :func:`choose_precision`; ``None`` means full fp32."""
    return choose_precision(precision, device).dtype


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype``, or nothing when the run computes in fp32."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
