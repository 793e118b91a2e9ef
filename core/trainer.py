"""The training loop: one torch-native file that reads top to bottom.

The same code runs in one CPU process, on one GPU, or in many processes under
``torchrun`` with DDP, FSDP2 or DeepSpeed's engine (``trainer.strategy``). :class:`Trainer` takes a model (already wrapped by its tuning
method), the task part that knows how to batch and score it, and the ``trainer`` config
node. It knows no task: features come in encoded, batches from ``task.collate``, the
loss from ``task.loss_sum`` / ``task.loss_count``, metrics from ``task.metrics``.

One optimizer step, on every rank:

1. take this step's examples from :func:`tunewright.batching.step_batches` (a pure
   function of seed and epoch, so a resumed run replays the same order);
2. split them into ``gradient_accumulation_steps`` micro-batches and across ranks;
3. count the loss terms of the whole step over all ranks, and back-propagate each
   micro-batch's *summed* loss divided by that count (times the world size, which DDP's
   and DeepSpeed's gradient averaging divides out): accumulation and data parallelism
   give the update of one big batch;
4. clip, check for NaN/Inf, step optimizer and schedule (DeepSpeed's engine clips and
   steps both itself, at the accumulation boundary tunewright sets).

Evaluation runs every ``eval_every_n_steps`` (or each epoch) and after the last step,
so a run shorter than the interval is still judged on validation data; it tracks the best
validation metric for early stopping and export, and checkpoints are written at each
evaluation (or every ``checkpoint_every_n_steps``). Hooks fire on rank 0.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunewright import checkpoint as ckpt
from tunewright import distributed, sharding
from tunewright.batching import micro_batches, step_batches
from tunewright.cpu_dropout import use_cpu_dropout
from tunewright.distributed import (
    DistributedContext,
    StoppedOnRankZero,
    all_reduce_sum,
    broadcast_object,
    gather_objects,
)
from tunewright.errors import ConfigError, TunewrightError, first_line
from tunewright.inference import feature_length, predict_logits, to_device
from tunewright.precision import autocast, autocast_dtype
from tunewright.throughput import count_parameters, memory_mb, model_flops_utilisation, peak_memory_mb
from tunewright.training_identity import training_config_hash
from tunewright.zero import engine as zero_engine
from tunewright.zero.config import ResolvedConfig


class NonFiniteLossError(TunewrightError):
    """The loss or gradient norm became NaN or infinite."""


@dataclass
class FitResult:
    steps: int
    epochs: int
    completed: bool  # False when stopped by trainer.stop_after_steps
    best_step: int | None
    best_metric: float | None
    wall_seconds: float
    tokens_per_second: float
    samples_per_second: float
    trainable_parameters: int
    total_parameters: int
    resumed_from_step: int | None


def warmup_then_decay(optimizer, warmup_steps: int, total_steps: int, schedule: str = "linear"):
    """Learning rate rising linearly for ``warmup_steps``, then decaying to zero
    linearly or along a half cosine."""
    if schedule not in ("linear", "cosine"):
        raise ConfigError(f"trainer.schedule: {schedule!r} is not one of linear, cosine")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def input_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens a batch feeds the model: unmasked ones, or every one of packed rows (which
    carry no mask); none for images or audio (an audio mask counts samples, not tokens)."""
    if "input_ids" not in batch:
        return 0
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return int(batch["input_ids"].numel())


def enable_activation_checkpointing(model: torch.nn.Module) -> None:
    """Recompute block activations in the backward pass (transformers' own switch).

    Non-reentrant checkpointing restores the RNG state, so results match a run without it.
    """
    if hasattr(model, "activation_checkpointing_enable"):  # transformers 5
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    elif hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        raise ConfigError("trainer.gradient_checkpointing: this model does not support it")


@dataclass
class _Progress:
    """What a checkpoint must carry besides weights to continue exactly."""

    step: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    evals_without_gain: int = 0


@dataclass
class _Plan:
    """What :meth:`Trainer.fit` settles before its first step."""

    epoch_steps: Callable[[int], list[list[int]]]  # epoch -> each step's example indices
    steps_per_epoch: int
    total_steps: int
    stop_at: int | None  # trainer.stop_after_steps, counted from where this attempt starts
    optimizer: torch.optim.Optimizer
    scheduler: Any
    progress: _Progress
    resumed_from: int | None
    totals: dict[str, float] = field(default_factory=lambda: {"tokens": 0.0, "samples": 0.0})


def evaluation_due(cfg, step: int, end_of_epoch: bool, last_step: bool) -> bool:
    """Evaluate every ``trainer.eval_every_n_steps`` steps, or at each epoch's end when it
    is 0, and after the last step: what the run ends with (and what select_best and a
    tuning trial compare) is always measured."""
    return last_step or (step % cfg.eval_every_n_steps == 0 if cfg.eval_every_n_steps else end_of_epoch)


def checkpoint_due(cfg, step: int, evaluated: bool) -> bool:
    """Checkpoint every ``trainer.checkpoint_every_n_steps`` steps, or after each evaluation when it is 0."""
    return step % cfg.checkpoint_every_n_steps == 0 if cfg.checkpoint_every_n_steps else evaluated


class Trainer:
    """Fits ``model`` on encoded features and evaluates it.

    :param run: the :class:`~tunewright.run.Run` (config, folder, rank).
    :param model: a ``torch.nn.Module`` whose forward takes a collated batch (without
        labels) and returns an object with ``.logits`` (every transformers model does).
    :param task: the model part: ``collate``, ``loss_sum``, ``loss_count``, ``metrics``.
    :param cfg: the ``trainer`` config node.
    :param hook: the plugin manager's hook relay.
    :param context: this process's place in the process group.
    :param device: where the model runs.
    :param deepspeed: the resolved DeepSpeed config when ``cfg.strategy`` is deepspeed.
    """

    def __init__(
        self,
        run,
        model: torch.nn.Module,
        task,
        cfg,
        hook,
        context: DistributedContext,
        device,
        deepspeed: ResolvedConfig | None = None,
    ):
        self.run = run
        self.task = task
        self.cfg = cfg
        self.hook = hook
        self.context = context
        self.device = device
        self.model = model.to(device)  # what evaluation and export use (sharded in place by FSDP)
        ckpt.freeze_frozen_statistics(self.model)
        self.engine = self.model  # what training calls: the model, its DDP or DeepSpeed wrapper, or compiled
        self.deepspeed = deepspeed
        if (cfg.strategy == "deepspeed") != (deepspeed is not None):
            raise ConfigError(f"trainer.strategy={cfg.strategy}: a DeepSpeed config goes with deepspeed only")
        self.dtype = autocast_dtype(cfg.precision, device)
        fp16_scaler = self.dtype == torch.float16 and deepspeed is None  # DeepSpeed scales fp16 losses itself
        self.scaler = torch.amp.GradScaler(device.type) if fp16_scaler else None
        if cfg.dropout_kernel == "auto" and device.type == "cpu":
            use_cpu_dropout(self.model)
        if cfg.gradient_checkpointing:
            enable_activation_checkpointing(self.model)
        if cfg.strategy == "fsdp":
            sharding.shard(self.model)
        elif deepspeed is not None:
            if cfg.compile:
                raise ConfigError("trainer.compile: not available with trainer.strategy=deepspeed; set it to false")
            # deepspeed.initialize wraps the model once the optimizer exists (in _setup)
        elif context.is_distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.engine = DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None
            )
        if cfg.compile:
            self.engine = torch.compile(self.engine)
        self.checkpoints = run.folder.path / "checkpoints"
        self.config_hash = training_config_hash(run.config, deepspeed.config if deepspeed else None)
        self.total_parameters = count_parameters(self.model)[1]
        self.best_state: dict[str, torch.Tensor] | None = None
        self._grad_norm = float("nan")
        self._bar = None  # the rank-0 progress bar while fit() runs on a terminal

    # ------------------------------------------------------------------ training

    def fit(self, train_features: list[dict], validation_features: list[dict]) -> FitResult:
        """Train on ``train_features`` (resuming from the newest valid checkpoint), evaluating
        on ``validation_features`` as configured; returns what the run records."""
        plan = self._setup(train_features)
        started = time.perf_counter()
        preempted = self._loop(plan, train_features, validation_features)
        return self._finish(plan, started, preempted)

    def _setup(self, train_features: list[dict]) -> _Plan:
        """Steps per epoch, optimizer, schedule and the progress a checkpoint restores."""
        cfg, world = self.cfg, self.context.world_size
        lengths = [feature_length(f) for f in train_features]
        step_size = cfg.batch_size * cfg.gradient_accumulation_steps * world
        smallest = cfg.gradient_accumulation_steps * world  # a step must give every rank and micro-batch an example

        def epoch_steps(epoch: int) -> list[list[int]]:
            steps = step_batches(lengths, step_size, self.run.config.seed, epoch, cfg.group_by_length)
            return [step for step in steps if len(step) >= smallest]

        steps_per_epoch = len(epoch_steps(0))
        if steps_per_epoch == 0:
            raise ConfigError(f"trainer.batch_size: {len(train_features)} training examples make no full step")
        total_steps = cfg.max_epochs * steps_per_epoch
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = None
        if not (self.deepspeed and self.deepspeed.builds_optimizer):
            optimizer = torch.optim.AdamW(
                trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=self.device.type == "cuda"
            )

        def schedule(stepped: torch.optim.Optimizer):
            return warmup_then_decay(stepped, math.ceil(cfg.warmup_ratio * total_steps), total_steps, cfg.schedule)

        if self.deepspeed:
            self.engine, optimizer, scheduler = zero_engine.initialize(self.model, optimizer, schedule, self.deepspeed)
        else:
            scheduler = schedule(optimizer)
        progress = self._resume(optimizer, scheduler)
        if self.context.is_main_process:  # what a killed attempt logged past its checkpoint is logged again
            self.run.folder.rewind_metrics(progress.step)
        stop_at = progress.step + cfg.stop_after_steps if cfg.stop_after_steps else None
        return _Plan(
            epoch_steps, steps_per_epoch, total_steps, stop_at, optimizer, scheduler, progress, progress.step or None
        )

    def _loop(self, plan: _Plan, train_features: list[dict], validation_features: list[dict]) -> bool:
        """Optimizer steps until the last epoch ends, early stopping says stop, or
        ``trainer.stop_after_steps`` is reached (then True: preempted, resumable)."""
        progress, cfg = plan.progress, self.cfg
        self._bar = self._progress_bar(plan.total_steps, progress.step)
        window = {"tokens": 0.0, "samples": 0.0, "since": time.perf_counter()}
        stopping = preempted = False
        while progress.step < plan.total_steps and not stopping:
            epoch, offset = divmod(progress.step, plan.steps_per_epoch)
            self.engine.train()
            for indices in plan.epoch_steps(epoch)[offset:]:
                step = progress.step + 1
                loss, tokens, samples = self._optimizer_step(
                    train_features, indices, plan.optimizer, plan.scheduler, step
                )
                progress.step = step
                for counter in (plan.totals, window):
                    counter["tokens"] += tokens
                    counter["samples"] += samples
                if self._bar is not None:
                    self._bar.update(1)
                if step % cfg.log_every_n_steps == 0 or step == plan.total_steps:
                    self._log_step(step, loss, plan, window, epoch)

                end_of_epoch = step % plan.steps_per_epoch == 0
                evaluated = bool(validation_features) and evaluation_due(
                    cfg, step, end_of_epoch, step == plan.total_steps
                )
                if evaluated:
                    stopping = self._evaluate_and_track(validation_features, progress)
                    self.engine.train()  # evaluation turned dropout off; the epoch goes on training
                preempted = plan.stop_at is not None and step >= plan.stop_at
                if checkpoint_due(cfg, step, evaluated) or preempted:
                    self._save_checkpoint(progress, plan.optimizer, plan.scheduler)
                stopping = stopping or preempted
                if stopping or end_of_epoch:
                    break
        if self._bar is not None:
            self._bar.close()
        return preempted

    def _finish(self, plan: _Plan, started: float, preempted: bool) -> FitResult:
        """Restore the best weights (``trainer.select_best``) and count what was done."""
        progress = plan.progress
        if not preempted and self.cfg.select_best and progress.best_step is not None:
            sharding.load_trainable(self.model, self.best_state or {})
        wall = time.perf_counter() - started
        trainable_count, total_count = count_parameters(self.model)
        return FitResult(
            steps=progress.step,
            epochs=math.ceil(progress.step / plan.steps_per_epoch),
            completed=not preempted,
            best_step=progress.best_step,
            best_metric=progress.best_metric,
            wall_seconds=wall,
            tokens_per_second=plan.totals["tokens"] / wall if wall else 0.0,
            samples_per_second=plan.totals["samples"] / wall if wall else 0.0,
            trainable_parameters=trainable_count,
            total_parameters=total_count,
            resumed_from_step=plan.resumed_from,
        )

    def _optimizer_step(self, features, indices, optimizer, scheduler, step: int) -> tuple[float, float, float]:
        """One update from this step's examples; returns (mean loss, tokens, samples) over all ranks."""
        shares = micro_batches(
            indices, self.cfg.gradient_accumulation_steps, self.context.rank, self.context.world_size
        )
        batches = [
            to_device(self.task.collate_train([features[i] for i in share]), self.device) for share in shares if share
        ]
        local_count = sum(self.task.loss_count(batch) for batch in batches)
        global_count = all_reduce_sum(float(local_count), self.context, self.device)
        scale = self.context.world_size / global_count  # DDP and DeepSpeed average over ranks; undo that
        loss_total, tokens = 0.0, 0
        for position, batch in enumerate(batches):
            last = position == len(batches) - 1
            if self.deepspeed:  # reduce and update after the step's last micro-batch, however many there are
                self.engine.set_gradient_accumulation_boundary(last)
            with self._gradient_sync(last):
                inputs = {key: value for key, value in batch.items() if key != "labels"}
                with autocast(self.device, self.dtype):
                    logits = self.engine(**inputs).logits
                loss_sum = self.task.loss_sum(logits, batch)
                self._backward(loss_sum * scale)
            loss_total += loss_sum.item()
            tokens += input_tokens(batch)

        mean_loss = all_reduce_sum(loss_total, self.context, self.device) / global_count
        if self.deepspeed:
            self._engine_update(mean_loss, step)
            return mean_loss, float(tokens), float(local_count)
        if self.scaler:
            self.scaler.unscale_(optimizer)
        grad_norm = self._grad_norm = self._clip_gradients()
        # Under fp16 an infinite gradient is the scaler's business (it skips the step).
        self._require_finite(step, mean_loss, grad_norm, check_norm=not self.scaler)
        if self.scaler:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return mean_loss, float(tokens), float(local_count)

    def _gradient_sync(self, last: bool):
        """DDP all-reduces gradients only on the step's last micro-batch (DeepSpeed decides
        that from the boundary set before each micro-batch)."""
        if last or self.engine is self.model or self.deepspeed:
            return contextlib.nullcontext()
        return self.engine.no_sync()

    def _backward(self, loss: torch.Tensor) -> None:
        if self.deepspeed:
            self.engine.backward(loss, scale_wrt_gas=False)  # the loss is already scaled for the whole step
        else:
            (self.scaler.scale(loss) if self.scaler else loss).backward()

    def _engine_update(self, mean_loss: float, step: int) -> None:
        """DeepSpeed's update: it clips (``gradient_clipping``), steps the optimizer and
        the schedule. A NaN loss stops the run before the update; the gradient norm is known
        only after it (under fp16 DeepSpeed skips overflowing steps itself)."""
        self._require_finite(step, mean_loss, float("nan"), check_norm=False)
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        self._grad_norm = float("nan") if norm is None else float(norm)
        checkable = norm is not None and not self.deepspeed.config["fp16"]["enabled"]
        self._require_finite(step, mean_loss, self._grad_norm, check_norm=checkable)

    @staticmethod
    def _require_finite(step: int, mean_loss: float, grad_norm: float, check_norm: bool) -> None:
        if not math.isfinite(mean_loss) or (check_norm and not math.isfinite(grad_norm)):
            raise NonFiniteLossError(
                f"step {step}: loss={mean_loss} grad_norm={grad_norm} is not finite; the run "
                "stopped and its last checkpoint is intact. Lower trainer.learning_rate or check the data"
            )

    def _clip_gradients(self) -> float:
        max_norm = self.cfg.max_grad_norm if self.cfg.max_grad_norm > 0 else float("inf")
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(trainable, max_norm)
        return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # a DTensor under FSDP

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, features: list[dict]) -> tuple[dict[str, float], np.ndarray]:
        """Task metrics and outputs (logits) over ``features`` (which carry labels); every
        rank computes the same numbers. A task with its own ``evaluate`` (a language model,
        whose full logits would not fit in memory) computes them itself."""
        own = self.task.evaluate(self.model, features, self.cfg.eval_batch_size, self.device, self.dtype)
        if own is not None:
            return own
        logits = self._split_logits(features)
        labels = np.array([feature["labels"] for feature in features])
        return self.task.metrics(logits, labels), logits

    def _split_logits(self, features: list[dict]) -> np.ndarray:
        """Logits for ``features`` in order. Under DDP each rank predicts every
        ``world_size``-th example and the shares are gathered, so evaluation takes
        ``1 / world_size`` of the time; sharded (FSDP) models need every rank in every
        forward pass, so there each rank predicts the whole split."""
        context = self.context

        def predict(share: list[dict]) -> np.ndarray:
            return predict_logits(
                self.model, share, self.task.collate, self.cfg.eval_batch_size, self.device, self.dtype
            )

        if not context.is_distributed or sharding.is_sharded(self.model) or len(features) < context.world_size:
            return predict(features)
        shares = gather_objects(predict(features[context.rank :: context.world_size]), context)
        logits = np.empty((len(features), *shares[0].shape[1:]), dtype=shares[0].dtype)
        for rank, share in enumerate(shares):
            logits[rank :: context.world_size] = share
        return logits

    def _evaluate_and_track(self, features: list[dict], progress: _Progress) -> bool:
        """Evaluate, remember the best weights; True when early stopping says stop."""
        metrics, _ = self.evaluate(features)
        self._fire_agreed("tunewright_eval_end", split="validation", step=progress.step, metrics=metrics)
        name = self.cfg.early_stopping_metric
        if name not in metrics:
            raise ConfigError(f"trainer.early_stopping_metric: {name!r} is not one of {', '.join(sorted(metrics))}")
        value = metrics[name]
        better = progress.best_metric is None or (
            value > progress.best_metric if self.cfg.early_stopping_mode == "max" else value < progress.best_metric
        )
        if better:
            progress.best_metric, progress.best_step, progress.evals_without_gain = value, progress.step, 0
            self.best_state = sharding.gather_trainable(self.model)
        else:
            progress.evals_without_gain += 1
        patience = self.cfg.early_stopping_patience
        return bool(patience) and progress.evals_without_gain >= patience

    # ------------------------------------------------------------------ checkpoints

    def _save_checkpoint(self, progress: _Progress, optimizer, scheduler) -> None:
        rng_states = gather_objects(ckpt.capture_rng_state(), self.context)
        weights = sharding.gather_trainable(self.model)
        if self.deepspeed:  # every rank's partition, written by DeepSpeed; moved into the checkpoint below
            optimizer_state, engine_folder = None, self._save_engine_state(progress.step)
        else:
            optimizer_state, engine_folder = sharding.gather_optimizer(self.model, optimizer), None
        if not self.context.is_main_process:
            return
        meta = {"config_hash": self.config_hash, "world_size": self.context.world_size, **progress.__dict__}
        if self.scaler:
            meta["grad_scaler"] = self.scaler.state_dict()
        best = self.best_state if progress.best_step not in (None, progress.step) else None
        path = ckpt.save_checkpoint(
            self.checkpoints,
            progress.step,
            weights,
            optimizer_state,
            scheduler.state_dict(),
            rng_states,
            meta,
            self.cfg.keep_last_checkpoints,
            best_weights=best,
            engine_folder=engine_folder,
        )
        self.hook.tunewright_checkpoint_saved(run=self.run, path=path, step=progress.step)

    def _save_engine_state(self, step: int) -> Path:
        """DeepSpeed's own checkpoint of this step (every rank writes its partition) in a
        staging folder beside the checkpoints; one a killed save left is removed first."""
        folder = self.checkpoints / f"{ckpt.ENGINE_STAGING_PREFIX}{step:08d}"
        if self.context.is_main_process:
            ckpt.remove_engine_staging(self.checkpoints)
        distributed.barrier()
        zero_engine.save_engine_state(self.engine, folder)
        distributed.barrier()  # every partition is on disk before rank 0 moves the folder
        return folder

    def _resume(self, optimizer, scheduler) -> _Progress:
        if self.cfg.resume == "never":
            return _Progress()
        if self.cfg.resume != "auto":
            raise ConfigError(f"trainer.resume: {self.cfg.resume!r} is not one of auto, never")
        found = ckpt.find_resumable(self.checkpoints, self.config_hash, self.cfg.resume_fallback)
        if found is None:
            return _Progress()
        state = ckpt.read_checkpoint(found, self.context.rank)
        if self.deepspeed:
            written_by = found.meta["world_size"]
            if written_by != self.context.world_size:
                raise ckpt.CheckpointError(
                    f"checkpoint {found.path} holds ZeRO partitions of {written_by} processes, and DeepSpeed "
                    f"resumes them only on as many (this run has {self.context.world_size}); launch "
                    f"{written_by} processes or start a new run folder"
                )
            zero_engine.load_engine_state(self.engine, found.path / ckpt.ENGINE_FOLDER)
        else:
            sharding.load_trainable(self.model, state["weights"])
            sharding.load_optimizer(self.model, optimizer, state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        ckpt.restore_rng_state(state["rng"])
        if self.scaler and "grad_scaler" in found.meta:
            self.scaler.load_state_dict(found.meta["grad_scaler"])
        self.best_state = state["best_weights"]
        return _Progress(**{k: found.meta[k] for k in _Progress.__dataclass_fields__})

    # ------------------------------------------------------------------ plumbing

    def _log_step(self, step: int, loss: float, plan: _Plan, window: dict, epoch: int) -> None:
        now = time.perf_counter()
        elapsed = max(now - window["since"], 1e-9)
        tokens = all_reduce_sum(window["tokens"], self.context, self.device)
        samples = all_reduce_sum(window["samples"], self.context, self.device)
        metrics = {
            "loss": loss,
            "learning_rate": plan.scheduler.get_last_lr()[0],
            "grad_norm": self._grad_norm,
            "tokens_per_second": tokens / elapsed,
            "samples_per_second": samples / elapsed,
            "peak_memory_mb": peak_memory_mb(self.device),
            "memory_mb": memory_mb(self.device),
            "epoch": epoch + 1,
            "total_steps": plan.total_steps,  # what progress and an ETA are measured against
        }
        per_device_tokens = tokens / elapsed / self.context.world_size
        mfu = model_flops_utilisation(per_device_tokens, self.total_parameters, self.device)
        if mfu is not None:
            metrics["mfu"] = mfu
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{loss:.4f}", tokens_per_s=f"{metrics['tokens_per_second']:.0f}")
        self._fire_main("tunewright_train_step_end", step=step, metrics=metrics)
        window.update(tokens=0.0, samples=0.0, since=now)

    def _fire_main(self, hook_name: str, **kwargs: Any) -> None:
        if self.context.is_main_process:
            getattr(self.hook, hook_name)(run=self.run, **kwargs)

    def _fire_agreed(self, hook_name: str, **kwargs: Any) -> None:
        """Fire a rank-0 hook at a point every rank reaches; an exception it raises stops
        every rank (rank 0 raises it, the others :class:`StoppedOnRankZero`)."""
        error = None
        if self.context.is_main_process:
            try:
                getattr(self.hook, hook_name)(run=self.run, **kwargs)
            except Exception as raised:  # handed to every rank below, then raised here too
                error = raised
        reason = broadcast_object(first_line(error) if error else None, self.context)
        if error is not None:
            raise error
        if reason is not None:
            raise StoppedOnRankZero(f"rank 0 stopped the run at this evaluation: {reason}")

    def _progress_bar(self, total: int, initial: int):
        if not (self.cfg.progress_bar and self.context.is_main_process and sys.stderr.isatty()):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)
