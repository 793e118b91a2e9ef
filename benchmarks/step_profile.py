"""Where a training step's time goes: tunewright's trainer under the torch profiler.

Runs ``tunewright train`` in this process with trainer_speed.py's settings
(all-MiniLM-L6-v2, LoRA r=8 on query/value, a BANKING77 subset, batch 32, max length
64, one epoch), profiles ``--steps`` optimizer steps after ``--skip`` warm-up steps, and
splits their wall time into:

* **matmul**: the self time of ``aten::mm``/``addmm``/``bmm``/``baddbmm`` (forward and backward);
* **attention**: the scaled-dot-product attention kernels and their backward;
* **dropout random numbers**: drawing dropout masks (``bernoulli_``, or ``random_`` for
  tunewright's CPU dropout kernel, :mod:`tunewright.cpu_dropout`);
* **other tensor ops**: every other operator's self time outside the ranges below (layer
  norm, GELU, dropout, embedding, softmax, element-wise, copies);
* **optimizer**: AdamW's ``step`` and ``zero_grad``, whole;
* **gradient clipping**: ``clip_grad_norm_`` and the finite check, whole;
* **collation**: the task's ``collate_train`` and the move to the device, whole;
* **Python and dispatch**: what is left of the wall time: the trainer's and the model's
  Python, autograd's bookkeeping, dispatch between operators.

The profiler adds its own overhead, so the unprofiled steps' median is printed beside
the profiled one.

    python benchmarks/step_profile.py                       # docs/benchmarks.md
    python benchmarks/step_profile.py trainer.dropout_kernel=native   # with PyTorch's CPU dropout
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile, record_function, schedule

MATMUL = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
RANDOM = {"aten::bernoulli_", "aten::random_"}  # dropout masks: PyTorch's and tunewright's CPU kernel
RANGES = {
    "optimizer": ("Optimizer.step", "Optimizer.zero_grad"),
    "clipping": ("tw.clip",),
    "collation": ("tw.collate",),
}
ORDER = (
    "matmul",
    "attention",
    "dropout random numbers",
    "other tensor ops",
    "optimizer",
    "clipping",
    "collation",
    "Python and dispatch",
)


def instrument(step_walls: list[float], after_step=lambda: None) -> None:
    """Mark collation and clipping in the trace, time every optimizer step into
    ``step_walls`` and call ``after_step`` after each (to advance a profiler's schedule):
    the benchmarks' only patching of the trainer."""
    from tunewright import trainer as trainer_module

    trainer_class = trainer_module.Trainer
    original_init, original_step = trainer_class.__init__, trainer_class._optimizer_step
    original_clip, original_to_device = trainer_class._clip_gradients, trainer_module.to_device

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        collate = self.task.collate_train

        def marked_collate(features):
            with record_function("tw.collate"):
                return collate(features)

        self.task.collate_train = marked_collate

    def to_device(batch, device):
        with record_function("tw.collate"):
            return original_to_device(batch, device)

    def clip(self):
        with record_function("tw.clip"):
            return original_clip(self)

    def optimizer_step(self, *args, **kwargs):
        started = time.perf_counter()
        with record_function("tw.step"):
            result = original_step(self, *args, **kwargs)
        step_walls.append(time.perf_counter() - started)
        after_step()
        return result

    trainer_class.__init__, trainer_class._optimizer_step, trainer_class._clip_gradients = init, optimizer_step, clip
    trainer_module.to_device = to_device


def inside_step(event) -> bool:
    """Whether ``event`` ran inside an optimizer step (not in logging between steps)."""
    while event is not None:
        if event.name == "tw.step":
            return True
        event = event.cpu_parent
    return False


def range_of(event) -> str | None:
    """The marked range (optimizer, clipping, collation) an event runs inside, if any."""
    while event is not None:
        for category, prefixes in RANGES.items():
            if event.name.startswith(prefixes):
                return category
        event = event.cpu_parent
    return None


def shares(events, wall_us: float) -> dict[str, float]:
    """Microseconds per category over the profiled steps (see the module docstring)."""
    spent: dict[str, float] = defaultdict(float)
    events = [event for event in events if inside_step(event)]
    for event in events:
        if not event.name.startswith("aten::"):
            continue  # record_function ranges and autograd nodes: their own time is overhead
        category = range_of(event)
        if category is None:
            if event.name in MATMUL:
                category = "matmul"
            elif "scaled_dot_product" in event.name or "flash_attention" in event.name:
                category = "attention"
            elif event.name in RANDOM:
                category = "dropout random numbers"
            else:
                category = "other tensor ops"
        spent[category] += event.self_cpu_time_total
    for event in events:  # whole ranges: their Python belongs to them, not to the trainer
        category = next((c for c, p in RANGES.items() if event.name.startswith(p)), None)
        if category and range_of(event.cpu_parent) is None:
            spent[category] += event.cpu_time_total - sum(child.self_cpu_time_total for child in all_aten(event))
    spent["Python and dispatch"] = max(0.0, wall_us - sum(spent.values()))
    return spent


def all_aten(event):
    """Every operator under ``event`` (counted already by category in :func:`shares`)."""
    for child in event.cpu_children:
        if child.name.startswith("aten::"):
            yield child
        yield from all_aten(child)


def main() -> None:
    from trainer_speed import run_tunewright  # the benchmark's own run, so the settings are its

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=2000, help="BANKING77 examples, train and test together")
    parser.add_argument("--skip", type=int, default=8, help="warm-up steps before profiling")
    parser.add_argument("--steps", type=int, default=20, help="steps profiled")
    parser.add_argument("overrides", nargs="*", help="more tunewright overrides: trainer.dropout_kernel=native, ...")
    args = parser.parse_args()

    step_walls: list[float] = []
    with profile(
        activities=[ProfilerActivity.CPU], schedule=schedule(wait=args.skip - 1, warmup=1, active=args.steps, repeat=1)
    ) as profiler:
        instrument(step_walls, profiler.step)
        run_tunewright(args.limit, 1, 2e-3, tuple(args.overrides))
    profiled = step_walls[args.skip : args.skip + args.steps]
    unprofiled = step_walls[: args.skip] + step_walls[args.skip + args.steps :]
    if len(profiled) < args.steps:
        raise SystemExit(f"the run made {len(step_walls)} steps; lower --skip or --steps, or raise --limit")
    events = profiler.events()
    wall_us = sum(profiled) * 1e6
    spent = shares(events, wall_us)
    print(
        f"{args.steps} steps profiled after {args.skip}; median step {statistics.median(profiled) * 1000:.0f} ms "
        f"profiled, {statistics.median(unprofiled) * 1000:.0f} ms unprofiled; {' '.join(args.overrides) or 'defaults'}, "
        f"{torch.get_num_threads()} threads"
    )
    print("| share of a step | ms per step | share |")
    print("|---|---:|---:|")
    for category in ORDER:
        print(f"| {category} | {spent[category] / args.steps / 1000:.1f} | {spent[category] / wall_us:.1%} |")


if __name__ == "__main__":
    main()
