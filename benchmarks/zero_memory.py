"""Memory per process under each distributed strategy, measured beside the formula.

Full fine-tuning (every weight trained, AdamW) of a random BERT of ``--layers`` layers
at BERT-base width (hidden 768, MiniLM's 30,522-token vocabulary: 110M parameters at
12 layers), fp32, two processes, through ``tunewright train`` with each
``trainer=`` strategy. Two figures of rank 0, from the trainer's metrics.jsonl (logged
every step, before the stop checkpoint): its resident memory at the last step
(``memory_mb``, the training state in steady state) and its peak RSS
(``peak_memory_mb``, which includes loading the whole model, as every process does
before it is sharded). Beside it: the model-state bytes the ZeRO paper's accounting gives for
fp32 AdamW (weights 4, gradients 4, two moments 8 bytes per parameter) on N processes:

    DDP          16 P             one-process run: 16 P as well
    ZeRO-1        8 P +  8 P / N  optimizer moments sharded
    ZeRO-2        4 P + 12 P / N  and the gradients
    ZeRO-3 / FSDP      16 P / N   and the weights

    python benchmarks/zero_memory.py               # 12 layers (110M): the row in docs/distributed.md
    python benchmarks/zero_memory.py --layers 2    # a minute, for a quick look
    MALLOC_MMAP_THRESHOLD_=65536 MALLOC_TRIM_THRESHOLD_=65536 python benchmarks/zero_memory.py

glibc keeps memory a process frees (every process loads the whole model, then shards
it) unless its thresholds are fixed, as the second line does; docs/distributed.md shows
both.

Activations, the libraries and the data come on top of every row alike. Nothing else
should run meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROCESSES = 2
STRATEGIES = {  # row name -> trainer overrides
    "one process": ["trainer=default"],
    "DDP": ["trainer=ddp"],
    "FSDP2": ["trainer=fsdp"],
    "ZeRO-1": ["trainer=deepspeed", "trainer.deepspeed.config=zero1"],
    "ZeRO-2": ["trainer=deepspeed", "trainer.deepspeed.config=zero2"],
    "ZeRO-3": ["trainer=deepspeed", "trainer.deepspeed.config=zero3"],
}
MODEL_STATE_BYTES = {  # bytes per parameter on each of n processes, fp32 AdamW
    "one process": lambda n: 16,
    "DDP": lambda n: 16,
    "FSDP2": lambda n: 16 / n,
    "ZeRO-1": lambda n: 8 + 8 / n,
    "ZeRO-2": lambda n: 4 + 12 / n,
    "ZeRO-3": lambda n: 16 / n,
}
STEPS = 3


def save_model(directory: Path, layers: int) -> int:
    """A random BERT-base-width model with MiniLM's tokenizer; its parameter count."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from tunewright.embedded import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("embedded:all-MiniLM-L6-v2"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, num_hidden_layers=layers)
    model = BertModel(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return sum(p.numel() for p in model.parameters())


def measure(model: Path, runs: Path, name: str, overrides: list[str]) -> tuple[float, float, float]:
    """Rank 0's resident memory at the last step and its peak RSS over the first steps of
    a full fine-tune (MB), and the wall time (s)."""
    run_id = name.lower().replace(" ", "-")
    processes = [] if name == "one process" else [f"trainer.nproc_per_node={PROCESSES}"]
    command = [
        sys.executable,
        "-m",
        "tunewright",
        "train",
        "model=bert",
        f"model.name_or_path={model}",
        "model.max_length=64",
        "method=full",
        "data.limit=400",
        "audit=none",
        "monitor=none",
        *overrides,
        *processes,
        "trainer.precision=fp32",
        f"trainer.stop_after_steps={STEPS}",
        "trainer.log_every_n_steps=1",
        "trainer.progress_bar=false",
        f"paths.runs_dir={runs}",
        f"paths.run_id={run_id}",
    ]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if result.returncode != 0:
        raise SystemExit(f"{name}: tunewright train failed:\n{result.stderr[-12000:]}")
    lines = (runs / run_id / "metrics.jsonl").read_text().splitlines()
    last = [row for row in map(json.loads, lines) if "memory_mb" in row][-1]
    return last["memory_mb"], last["peak_memory_mb"], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        parameters = save_model(root / "model", args.layers)
        print(f"random BERT, {args.layers} layers, {parameters / 1e6:.1f}M parameters, full fine-tune, fp32 AdamW, ")
        print(f"{PROCESSES} processes (one for the first row), {STEPS} steps of 16 x 64 tokens per process\n")
        print("| strategy | model state per process (formula) | rank 0 resident at step 3 | rank 0 peak RSS | wall |")
        print("|---|---|---|---|---|")
        for name, overrides in STRATEGIES.items():
            resident, peak, wall = measure(root / "model", root / "runs", name, overrides)
            state = MODEL_STATE_BYTES[name](PROCESSES) * parameters / 2**20
            print(f"| {name} | {state:,.0f} MB | {resident:,.0f} MB | {peak:,.0f} MB | {wall:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
