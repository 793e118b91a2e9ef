"""Batched forward passes without gradients: logits, pooled embeddings, in input order.

Training-time evaluation, :class:`~tunewright.predictor.Predictor`, the audits' base
model pass and the tasks' own evaluation and generation all run through these
functions, so a reloaded model reproduces the evaluation's numbers exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from tunewright.batching import length_sorted_order
from tunewright.precision import autocast


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


def feature_length(feature: dict[str, Any]) -> int:
    return len(feature["input_ids"]) if "input_ids" in feature else 1


def batches_with_logits(
    model, features: list[dict], order: list[int], collate, batch_size: int, device, dtype=None
) -> Iterator[tuple[list[int], dict[str, torch.Tensor], torch.Tensor]]:
    """``(indices, batch, logits)`` for ``features`` taken ``batch_size`` at a time in
    ``order`` (similar lengths together), the forward without the batch's labels: what a
    task's own evaluation scores and decodes batch by batch. Call under ``no_grad``."""
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        batch = to_device(collate([features[i] for i in chosen]), device)
        with autocast(device, dtype):
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        yield chosen, batch, logits


def predict_logits(
    model, features: list[dict], collate, batch_size: int, device: torch.device, dtype: torch.dtype | None = None
) -> np.ndarray:
    """The model's logits for ``features``, in their order.

    Training-time evaluation and :class:`~tunewright.predictor.Predictor` both call
    this, so a reloaded model reproduces the evaluation's predictions.
    """
    return predict_outputs(model, features, collate, batch_size, device, dtype)[0]


@torch.no_grad()
def predict_outputs(
    model,
    features: list[dict],
    collate,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None = None,
    embed: Callable | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits for ``features`` in their order and, given ``embed(output, batch)``, one
    embedding per example (what drift monitors compare; :func:`token_mean` for text).

    Batches are formed longest-first (least padding) and the rows put back in input order.
    """
    model.eval()
    order = length_sorted_order([feature_length(f) for f in features])
    logits, pooled = [], []
    for start in range(0, len(order), batch_size):
        batch = to_device(collate([features[i] for i in order[start : start + batch_size]]), device)
        batch.pop("labels", None)
        with autocast(device, dtype):
            output = model(**batch, **({"output_hidden_states": True} if embed else {}))
        logits.append(output.logits.float().cpu())
        if embed:
            pooled.append(embed(output, batch).float().cpu())
    return _input_order(torch.cat(logits), order), _input_order(torch.cat(pooled), order) if embed else None


def token_mean(output, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The last hidden state averaged over each example's tokens (padding left out)."""
    return masked_mean(output.hidden_states[-1], batch["attention_mask"])


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``hidden`` (batch, tokens, width) averaged over the tokens the mask keeps."""
    hidden, mask = hidden.float(), attention_mask.float()
    if hidden.shape[1] > mask.shape[1]:  # virtual tokens a method prepended (prompt tuning) count too
        mask = torch.cat([mask.new_ones(mask.shape[0], hidden.shape[1] - mask.shape[1]), mask], dim=1)
    mask = mask.unsqueeze(-1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


@torch.no_grad()
def pooled_hidden_states(
    model,
    features: list[dict],
    collate,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None = None,
    last_hidden=None,
    **forward,
) -> np.ndarray:
    """One embedding per feature, in order: the last hidden state (or ``last_hidden(output)``)
    averaged over the input's tokens; for tasks whose logits are not one row per example
    (``forward`` may ask the model to skip most of them, e.g. ``logits_to_keep=1``)."""
    model.eval()
    rows = []
    for start in range(0, len(features), batch_size):
        batch = to_device(collate(features[start : start + batch_size]), device)
        batch.pop("labels", None)
        with autocast(device, dtype):
            output = model(**batch, output_hidden_states=True, **forward)
        hidden = last_hidden(output) if last_hidden else output.hidden_states[-1]
        rows.append(masked_mean(hidden, batch["attention_mask"]).cpu())
    return torch.cat(rows).numpy()


def _input_order(rows: torch.Tensor, order: list[int]) -> np.ndarray:
    restored = np.empty_like(rows.numpy())
    restored[order] = rows.numpy()
    return restored
