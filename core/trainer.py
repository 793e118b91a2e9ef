"""The training loop: one torch-native file that reads top to bottom.

:class:`Trainer` takes a model (already wrapped by its tuning method), the task part
that knows how to batch and score it, and the ``trainer`` config node. It tokenises
nothing and knows no task: features come in encoded, batches come from
``task.collate``, metrics from ``task.metrics``.

Per step it fires ``tunewright_train_step_end`` (rank 0) with loss, learning rate,
gradient norm and throughput; after each epoch it evaluates the validation split and
fires ``tunewright_eval_end``.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from tunewright.errors import TunewrightError


class NonFiniteLossError(TunewrightError):
    """The loss or gradient norm became NaN or infinite."""


@dataclass
class FitResult:
    steps: int
    epochs: int
    wall_seconds: float
    tokens_per_second: float
    samples_per_second: float
    trainable_parameters: int
    total_parameters: int


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def linear_warmup_decay(optimizer, warmup_steps: int, total_steps: int):
    """Learning rate rising linearly for ``warmup_steps``, then falling linearly to zero."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


@torch.no_grad()
def predict_logits(model, features: list[dict], collate, batch_size: int, device: torch.device) -> np.ndarray:
    """The model's logits for ``features``, in their order, batched without shuffling.

    Training-time evaluation and :class:`~tunewright.predictor.Predictor` both call this,
    so a reloaded model reproduces the evaluation's predictions.
    """
    model.eval()
    outputs = []
    for start in range(0, len(features), batch_size):
        batch = to_device(collate(features[start : start + batch_size]), device)
        batch.pop("labels", None)
        outputs.append(model(**batch).logits.float().cpu())
    return torch.cat(outputs).numpy()


class Trainer:
    """Fits ``model`` on encoded features and evaluates it.

    :param run: the :class:`~tunewright.run.Run` (for hooks and rank).
    :param model: a ``torch.nn.Module`` whose forward takes a collated batch and returns
        an object with ``.loss`` and ``.logits`` (every transformers model does).
    :param task: the model part: ``collate(features)`` and ``metrics(logits, labels)``.
    :param cfg: the ``trainer`` config node.
    :param hook: the plugin manager's hook relay.
    """

    def __init__(self, run, model: torch.nn.Module, task, cfg, hook):
        self.run = run
        self.task = task
        self.cfg = cfg
        self.hook = hook
        self.device = pick_device(cfg.device)
        self.model = model.to(self.device)
        self.generator = torch.Generator().manual_seed(run.config.seed)

    # ------------------------------------------------------------------ batching

    def _loader(self, features: list[dict], batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            features,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=self.generator if shuffle else None,
            collate_fn=self.task.collate,
        )

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return to_device(batch, self.device)

    # ------------------------------------------------------------------ training

    def fit(self, train_features: list[dict], validation_features: list[dict]) -> FitResult:
        cfg = self.cfg
        loader = self._loader(train_features, cfg.batch_size, shuffle=True)
        total_steps = cfg.max_epochs * len(loader)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        scheduler = linear_warmup_decay(optimizer, math.ceil(cfg.warmup_ratio * total_steps), total_steps)
        progress = self._progress_bar(total_steps)

        step, tokens, samples = 0, 0, 0
        started = time.perf_counter()
        window_started, window_tokens, window_samples = started, 0, 0
        for epoch in range(cfg.max_epochs):
            self.model.train()
            for batch in loader:
                batch = self._to_device(batch)
                loss = self.model(**batch).loss
                loss.backward()
                grad_norm = self._clip_gradients(trainable)
                self._check_finite(loss, grad_norm, step + 1)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)

                step += 1
                batch_tokens = int(batch["attention_mask"].sum()) if "attention_mask" in batch else 0
                batch_samples = len(batch["labels"])
                tokens, samples = tokens + batch_tokens, samples + batch_samples
                window_tokens, window_samples = window_tokens + batch_tokens, window_samples + batch_samples
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
                if step % cfg.log_every_n_steps == 0 or step == total_steps:
                    elapsed = max(time.perf_counter() - window_started, 1e-9)
                    self._fire_main(
                        "tunewright_train_step_end",
                        step=step,
                        metrics={
                            "loss": loss.item(),
                            "learning_rate": scheduler.get_last_lr()[0],
                            "grad_norm": grad_norm,
                            "tokens_per_second": window_tokens / elapsed,
                            "samples_per_second": window_samples / elapsed,
                            "epoch": epoch + 1,
                        },
                    )
                    window_started, window_tokens, window_samples = time.perf_counter(), 0, 0
            if validation_features:
                metrics, _ = self.evaluate(validation_features)
                self._fire_main("tunewright_eval_end", split="validation", step=step, metrics=metrics)
        if progress is not None:
            progress.close()

        wall = time.perf_counter() - started
        trainable_count, total_count = count_parameters(self.model)
        return FitResult(
            steps=step,
            epochs=cfg.max_epochs,
            wall_seconds=wall,
            tokens_per_second=tokens / wall if wall else 0.0,
            samples_per_second=samples / wall if wall else 0.0,
            trainable_parameters=trainable_count,
            total_parameters=total_count,
        )

    def _clip_gradients(self, parameters: list[torch.Tensor]) -> float:
        max_norm = self.cfg.max_grad_norm if self.cfg.max_grad_norm > 0 else float("inf")
        return float(torch.nn.utils.clip_grad_norm_(parameters, max_norm))

    @staticmethod
    def _check_finite(loss: torch.Tensor, grad_norm: float, step: int) -> None:
        if not torch.isfinite(loss) or not math.isfinite(grad_norm):
            raise NonFiniteLossError(
                f"step {step}: loss={loss.item()} grad_norm={grad_norm} is not finite; "
                "lower trainer.learning_rate or check the data"
            )

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, features: list[dict]) -> tuple[dict[str, float], np.ndarray]:
        """Task metrics and logits over ``features`` (which carry labels)."""
        logits = predict_logits(self.model, features, self.task.collate, self.cfg.eval_batch_size, self.device)
        labels = np.array([feature["labels"] for feature in features])
        return self.task.metrics(logits, labels), logits

    # ------------------------------------------------------------------ plumbing

    def _fire_main(self, hook_name: str, **kwargs: Any) -> None:
        if self.run.is_main_process:
            getattr(self.hook, hook_name)(run=self.run, **kwargs)

    def _progress_bar(self, total: int):
        if not (self.cfg.progress_bar and self.run.is_main_process and sys.stderr.isatty()):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="train", unit="step", dynamic_ncols=True)
