"""The DeepSpeed JSON a run uses, resolved against tunewright's ``trainer`` config.

``trainer.deepspeed.config`` names a bundled file (``zero1``, ``zero2``, ``zero3``,
``zero2_offload``, ``zero3_offload`` in ``core/zero/configs/``) or the path of one's own:
Axolotl's, HF Accelerate's and LLaMA-Factory's DeepSpeed JSONs are read as they are. As
in Hugging Face's integration, every ``"auto"`` (and every absent key below) is filled
from tunewright's config:

====================================  ====================================================
DeepSpeed key                         from
====================================  ====================================================
train_micro_batch_size_per_gpu        trainer.batch_size
gradient_accumulation_steps           trainer.gradient_accumulation_steps
train_batch_size                      batch_size x gradient_accumulation_steps x processes
gradient_clipping                     trainer.max_grad_norm
bf16.enabled, fp16.enabled            trainer.precision, as chosen on this machine
optimizer.params.lr, weight_decay     trainer.learning_rate, trainer.weight_decay
optimizer.params.betas, eps           torch AdamW's: [0.9, 0.999], 1e-8
zero_optimization bucket sizes,       left to DeepSpeed's defaults (the key is removed)
stage3_param_persistence_threshold
====================================  ====================================================

A concrete value that disagrees with tunewright's is an error naming both: the run would
otherwise train with a batch size or learning rate other than the one its config,
manifest and model card state. The learning-rate schedule is tunewright's
(``trainer.schedule``, ``trainer.warmup_ratio``): a ``scheduler`` section whose
parameters are all ``"auto"`` gives way to it; one with values is refused. Without an
``optimizer`` section DeepSpeed wraps tunewright's own torch AdamW; with one, DeepSpeed
builds it. Optimizer offload needs DeepSpeed's CPU Adam, so an offloading config without
an ``optimizer`` section gets an AdamW one with the values above.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewright.errors import ConfigError

BUNDLED_DIR = Path(__file__).parent / "configs"
BUNDLED = tuple(sorted(path.stem for path in BUNDLED_DIR.glob("*.json")))
AUTO = "auto"
ADAMW_DEFAULTS = {"betas": [0.9, 0.999], "eps": 1e-8}  # torch.optim.AdamW's, which tunewright trains with
OPTIMIZER_TYPES = ("AdamW", "Adam")  # the two DeepSpeed builds as AdamW (Adam with weight_decay decoupled)
SCHEDULER_TYPES = ("WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "OneCycle", "LRRangeTest")
DEEPSPEED_DEFAULTED = ("reduce_bucket_size", "stage3_prefetch_bucket_size", "stage3_param_persistence_threshold")


@dataclass(frozen=True)
class ResolvedConfig:
    """The DeepSpeed config a run trains with, where it came from, and what resolution
    did besides filling ``"auto"`` (said in the run folder's ``deepspeed.json`` record)."""

    config: dict[str, Any]
    origin: str  # a bundled config's name, or the file's path
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.config, sort_keys=True).encode()).hexdigest()

    @property
    def stage(self) -> int:
        return int(self.config.get("zero_optimization", {}).get("stage", 0))

    @property
    def builds_optimizer(self) -> bool:
        """DeepSpeed builds the optimizer (from the ``optimizer`` section), not tunewright."""
        return "optimizer" in self.config

    def record(self) -> dict[str, Any]:
        """What the run folder keeps: origin, hash, notes and the config itself."""
        return {"origin": self.origin, "sha256": self.sha256, "notes": list(self.notes), "config": self.config}


def read_source(name: str) -> tuple[dict[str, Any], str]:
    """The JSON object ``trainer.deepspeed.config`` names, and its origin for messages."""
    if name in BUNDLED:
        path, origin = BUNDLED_DIR / f"{name}.json", name
    else:
        path = Path(name).expanduser()
        origin = str(path)
        if not path.is_file():
            raise ConfigError(
                f"trainer.deepspeed.config: {name!r} is neither a bundled config ({', '.join(BUNDLED)}) nor a file"
            )
    try:
        source = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{origin}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{origin}: unreadable ({error})") from None
    if not isinstance(source, dict):
        raise ConfigError(f"{origin}: a DeepSpeed config is a JSON object, not a {type(source).__name__}")
    return source, origin


class _Resolver:
    """Fills one config in place; each contradiction is an error naming both sides."""

    def __init__(self, config: dict[str, Any], origin: str):
        self.config, self.origin = config, origin

    def settle(self, path: str, ours: Any, our_key: str, shown: str | None = None) -> None:
        """Set ``path`` (dotted) to ``ours`` when absent or ``"auto"``; refuse any other
        value, naming ``shown`` (default: ``our_key=ours``) as what it contradicts."""
        *parents, key = path.split(".")
        node = self.config
        for parent in parents:
            child = node.setdefault(parent, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{self.origin}: {parent} must be a JSON object, not {child!r}")
            node = child
        value = node.get(key, AUTO)
        if value == AUTO:
            node[key] = ours
        elif not _same(value, ours):
            raise ConfigError(
                f"{self.origin}: {path}={json.dumps(value)} contradicts {shown or f'{our_key}={json.dumps(ours)}'}; "
                f'make them agree, or set {path} to "auto"'
            )


def _same(theirs: Any, ours: Any) -> bool:
    if isinstance(theirs, bool) or isinstance(ours, bool):
        return theirs is ours or theirs == ours
    if isinstance(theirs, (int, float)) and isinstance(ours, (int, float)):
        return abs(theirs - ours) <= 1e-12 * max(abs(theirs), abs(ours), 1.0)
    if isinstance(theirs, list) and isinstance(ours, list):
        return len(theirs) == len(ours) and all(_same(a, b) for a, b in zip(theirs, ours, strict=True))
    return theirs == ours


def resolve(name: str, trainer, world_size: int, precision: str) -> ResolvedConfig:
    """The config ``name`` resolved against the ``trainer`` node, for ``world_size``
    processes computing in ``precision`` (``fp32``, ``bf16`` or ``fp16``: the choice
    :func:`tunewright.precision.choose_precision` made, so ``auto`` means the same as
    everywhere else in tunewright)."""
    source, origin = read_source(name)
    config = copy.deepcopy(source)
    resolver = _Resolver(config, origin)
    notes: list[str] = []
    batch, accumulation = trainer.batch_size, trainer.gradient_accumulation_steps
    resolver.settle("train_micro_batch_size_per_gpu", batch, "trainer.batch_size")
    resolver.settle("gradient_accumulation_steps", accumulation, "trainer.gradient_accumulation_steps")
    total = batch * accumulation * world_size
    resolver.settle(
        "train_batch_size",
        total,
        "trainer.batch_size",
        f"trainer.batch_size x gradient_accumulation_steps x processes = {batch} x {accumulation} x {world_size} = {total}",
    )
    resolver.settle("gradient_clipping", float(trainer.max_grad_norm), "trainer.max_grad_norm")
    for half in ("bf16", "fp16"):
        shown = f"trainer.precision, which computes in {precision} on this machine"
        resolver.settle(f"{half}.enabled", precision == half, "trainer.precision", shown)
    zero = config.setdefault("zero_optimization", {})
    if not isinstance(zero, dict):
        raise ConfigError(f"{origin}: zero_optimization must be a JSON object, not {zero!r}")
    for key in DEEPSPEED_DEFAULTED:
        if zero.get(key) == AUTO:
            del zero[key]
    if "offload_optimizer" in zero and "optimizer" not in config:
        config["optimizer"] = {"type": "AdamW", "params": {}}
        notes.append("optimizer offload needs DeepSpeed's CPU Adam: an AdamW optimizer section was added")
    if "optimizer" in config:
        _settle_optimizer(resolver, trainer)
    if "scheduler" in config:
        notes.append(_drop_scheduler(config, origin))
    if "optimizer" not in config:
        config.setdefault("zero_allow_untested_optimizer", True)  # tunewright's torch AdamW
    leftover = sorted(_auto_paths(config))
    if leftover:
        raise ConfigError(
            f'{origin}: tunewright does not fill {", ".join(leftover)} ("auto"); give '
            f"{'it a value' if len(leftover) == 1 else 'them values'}"
        )
    return ResolvedConfig(config, origin, tuple(notes))


def _settle_optimizer(resolver: _Resolver, trainer) -> None:
    section = resolver.config["optimizer"]
    kind = section.get("type") if isinstance(section, dict) else None
    if kind not in OPTIMIZER_TYPES:
        raise ConfigError(
            f"{resolver.origin}: optimizer.type={json.dumps(kind)}; tunewright trains with AdamW "
            f"(use {' or '.join(OPTIMIZER_TYPES)}, or remove the section to use tunewright's own)"
        )
    resolver.settle("optimizer.params.lr", float(trainer.learning_rate), "trainer.learning_rate")
    resolver.settle("optimizer.params.weight_decay", float(trainer.weight_decay), "trainer.weight_decay")
    for key, value in ADAMW_DEFAULTS.items():
        resolver.settle(f"optimizer.params.{key}", value, f"torch AdamW's {key}")
    if kind == "Adam":  # DeepSpeed's Adam with adam_w_mode is AdamW; without it the decay would differ
        resolver.settle("optimizer.params.adam_w_mode", True, "AdamW's decoupled weight decay")


def _drop_scheduler(config: dict[str, Any], origin: str) -> str:
    section = config["scheduler"]
    kind = section.get("type") if isinstance(section, dict) else None
    params = section.get("params", {}) if isinstance(section, dict) else {}
    concrete = sorted(key for key, value in params.items() if value != AUTO)
    if kind not in SCHEDULER_TYPES or concrete:
        what = f"sets {', '.join(f'scheduler.params.{key}' for key in concrete)}" if concrete else f"type {kind!r}"
        raise ConfigError(
            f"{origin}: the scheduler section {what}; tunewright schedules the learning rate itself "
            '(trainer.schedule, trainer.warmup_ratio): set those, and remove the section or make its params "auto"'
        )
    del config["scheduler"]
    return f"scheduler {kind} (all auto) replaced by tunewright's trainer.schedule with trainer.warmup_ratio"


def _auto_paths(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [path for key, value in node.items() for path in _auto_paths(value, f"{prefix}{key}.")]
    return [prefix.rstrip(".")] if node == AUTO else []
