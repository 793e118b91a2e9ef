"""Sequence packing for decoder fine-tuning: the same run with and without it.

A random GPT-2 (4 layers, width 256, MiniLM's tokenizer; built here, nothing
downloaded) learns BANKING77's intent names from its customer messages through
``tunewright train experiment=sft method=full``, batch 32, max length 128, one epoch on
a 2,000-row stratified subset. The two variants run one after another in their own
processes, ``--repeats`` rounds in alternating order; the table gives each variant's
median and the ratios to the unpacked run. The test loss should agree to numerical
noise: packing changes the batches' layout, not what is learned.

    python benchmarks/packing.py                # about 5 minutes on 2 cores
    python benchmarks/packing.py --repeats 1    # quicker, noisier

Nothing else should run meanwhile: on 2 cores a second job halves every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def build_model(directory: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config

    from tunewright.embedded import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("embedded:all-MiniLM-L6-v2"), eos_token="[SEP]")
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=tokenizer.vocab_size,
        n_embd=256,
        n_layer=4,
        n_head=4,
        n_positions=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def run(model: Path, runs: Path, packing: bool, name: str, limit: int) -> dict:
    overrides = [
        "experiment=sft",
        "data=banking77",
        f"data.limit={limit}",
        f"model.name_or_path={model}",
        "model.max_length=128",
        f"model.packing={str(packing).lower()}",
        "model.generate_test_examples=0",
        "method=full",
        "trainer.batch_size=32",
        "trainer.max_epochs=1",
        "trainer.learning_rate=1e-3",
        "trainer.progress_bar=false",
        f"paths.runs_dir={runs}",
        f"paths.run_id={name}",
    ]
    subprocess.run(
        [sys.executable, "-m", "tunewright", "train", *overrides],
        check=True,
        capture_output=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    results = json.loads((runs / name / "results.json").read_text())
    return {
        "wall": results["train"]["wall_seconds"],
        "examples_per_s": results["train"]["samples_per_second"],
        "test_loss": results["test"]["loss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "gpt2"
        build_model(model)
        measured: dict[str, list[dict]] = {"unpacked": [], "packed": []}
        for repeat in range(args.repeats):
            order = ["unpacked", "packed"] if repeat % 2 == 0 else ["packed", "unpacked"]
            for variant in order:
                measured[variant].append(
                    run(model, Path(tmp) / "runs", variant == "packed", f"{variant}-{repeat}", args.limit)
                )
    median = {v: {key: statistics.median(r[key] for r in rows) for key in rows[0]} for v, rows in measured.items()}
    base = median["unpacked"]
    print("| variant | train wall s | examples/s | test loss | wall ratio | examples/s ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for variant, m in median.items():
        print(
            f"| {variant} | {m['wall']:.1f} | {m['examples_per_s']:.1f} | {m['test_loss']:.4f} | "
            f"{m['wall'] / base['wall']:.2f} | {m['examples_per_s'] / base['examples_per_s']:.2f} |"
        )


if __name__ == "__main__":
    main()
