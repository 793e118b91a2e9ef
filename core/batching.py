"""Which examples go into which optimizer step, on which rank.

Training batches are **length-grouped**: each epoch the indices are shuffled with a
generator seeded by ``(seed, epoch)``, cut into mega-batches of ``group_factor`` steps (8),
and each mega-batch is sorted by length before being cut into steps, whose order is
shuffled again. Examples of similar length share a batch, so dynamic padding wastes
little compute, while the data order stays random and, above all, a pure function of
``(seed, epoch)``: resuming at step ``k`` replays exactly the batches a straight run
would have seen.

One *step batch* feeds one optimizer step: ``micro_batch_size x accumulation x
world_size`` examples, split into ``accumulation`` micro-batches, each split across the
ranks. A single process with batch ``2B`` and two ranks with batch ``B`` therefore see
the same examples per step.
"""

from __future__ import annotations

import torch


def step_batches(
    lengths: list[int],
    step_size: int,
    seed: int,
    epoch: int,
    group_by_length: bool = True,
    group_factor: int = 8,
) -> list[list[int]]:
    """The index lists of one epoch's optimizer steps, ``step_size`` examples each
    (the last may be smaller)."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if not group_by_length:
        return [order[i : i + step_size] for i in range(0, len(order), step_size)]
    mega = step_size * group_factor
    steps = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega], key=lambda i: lengths[i], reverse=True)
        steps.extend(chunk[i : i + step_size] for i in range(0, len(chunk), step_size))
    # The last step may be short; keep it last so every other step is full.
    full, short = (steps[:-1], steps[-1:]) if len(steps[-1]) < step_size else (steps, [])
    permutation = torch.randperm(len(full), generator=generator).tolist()
    return [full[i] for i in permutation] + short


def micro_batches(step: list[int], accumulation: int, rank: int, world_size: int) -> list[list[int]]:
    """This rank's share of each of a step's ``accumulation`` micro-batches.

    Consecutive examples of a length-sorted step go to different ranks, so every rank's
    micro-batch spans the same lengths.
    """
    size = -(-len(step) // accumulation)
    return [step[i : i + size][rank::world_size] for i in range(0, len(step), size)]


def length_sorted_order(lengths: list[int]) -> list[int]:
    """Indices longest first: evaluation batches that pad as little as possible."""
    return sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
