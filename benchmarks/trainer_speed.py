"""tunewright's trainer against a hand-written loop and Hugging Face ``Trainer``.

Every variant fine-tunes all-MiniLM-L6-v2 with LoRA (r=8, alpha=16, dropout 0.1, on
query/value) on the same stratified BANKING77 subset, max length 64, batch 32, the
same learning rate, warmup, schedule and epochs, and is scored on the same test split:

* ``tunewright``: ``tunewright train`` (length-grouped batches, the default);
* ``tunewright_native_dropout``: the same with ``trainer.dropout_kernel=native``
  (PyTorch's CPU dropout instead of tunewright's cheaper mask);
* ``plain_random``: a hand-written PyTorch loop, random batches, dynamic padding;
* ``plain_grouped``: the same loop with tunewright's length-grouped batch order;
* ``hf_trainer``: ``transformers.Trainer`` with its default settings besides the above;
* ``hf_trainer_grouped``: the same with ``train_sampling_strategy="group_by_length"``
  (its length grouping, one flag in transformers 5);
* ``hf_trainer_grouped_bf16``: grouped and ``bf16=True`` (bf16 autocast on the CPU): HF
  Trainer at its best on a CPU that computes bf16 natively.

tunewright runs with ``trainer.precision=auto``, its default: bf16 where the CPU has
native bf16 and fp32 elsewhere; the first line printed says which this machine got.

Each variant runs in its own process (so peak RSS is its own) one after the other, and
the table reports wall seconds of training, real (non-padding) tokens per second, peak
RSS and test accuracy, each with its ratio to tunewright.

    python benchmarks/trainer_speed.py --limit 2000 --epochs 3 --repeats 3   # docs/benchmarks.md
    python benchmarks/trainer_speed.py --limit 600 --epochs 1 --repeats 1    # a quick look

Nothing else should run on the machine meanwhile: on 2 cores a second job halves every
figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = (
    "tunewright",
    "tunewright_native_dropout",
    "plain_random",
    "plain_grouped",
    "hf_trainer",
    "hf_trainer_grouped",
    "hf_trainer_grouped_bf16",
)
MAX_LENGTH, BATCH_SIZE, RANK, ALPHA, DROPOUT = 64, 32, 8, 16, 0.1
TARGETS = ["query", "value"]
WARMUP_RATIO, WEIGHT_DECAY, SEED = 0.1, 0.01, 42


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_splits(limit: int):
    """The BANKING77 subset every variant trains and tests on: tunewright's own loader
    and cleaning, so the hand-written loops and HF Trainer see exactly its data."""
    from omegaconf import OmegaConf

    from tunewright.cleaning import clean
    from tunewright.plugins.datasets.banking77 import Banking77
    from tunewright.schema import DataConfig

    cfg = OmegaConf.structured(DataConfig(kind="banking77", limit=limit, validation_fraction=0.0))
    return clean(Banking77(cfg).load(), cfg.cleaning)[0]


def build_model(num_labels: int):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging

    from tunewright.embedded import resolve_model_path

    logging.set_verbosity_error()
    path = resolve_model_path("embedded:all-MiniLM-L6-v2")
    torch.manual_seed(SEED)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels)
    lora = LoraConfig(task_type="SEQ_CLS", r=RANK, lora_alpha=ALPHA, lora_dropout=DROPOUT, target_modules=TARGETS)
    return get_peft_model(model, lora), AutoTokenizer.from_pretrained(path)


def encode(tokenizer, examples):
    encoded = tokenizer([e["text"] for e in examples], truncation=True, max_length=MAX_LENGTH)
    return [
        {"input_ids": ids, "attention_mask": mask, "labels": e["label"]}
        for ids, mask, e in zip(encoded["input_ids"], encoded["attention_mask"], examples)
    ]


def collate(tokenizer, features):
    import torch

    batch = tokenizer.pad([{k: f[k] for k in ("input_ids", "attention_mask")} for f in features], return_tensors="pt")
    batch["labels"] = torch.tensor([f["labels"] for f in features])
    return dict(batch)


def accuracy(model, tokenizer, features) -> float:
    import torch

    from tunewright.inference import predict_logits

    logits = predict_logits(model, features, lambda fs: collate(tokenizer, fs), 128, torch.device("cpu"))
    return float((logits.argmax(-1) == [f["labels"] for f in features]).mean())


def run_plain(data, epochs: int, lr: float, grouped: bool) -> dict:
    """The hand-written loop: AdamW, linear warmup/decay, mean cross-entropy per batch."""
    import random

    import torch

    from tunewright.batching import step_batches
    from tunewright.trainer import warmup_then_decay

    model, tokenizer = build_model(len(data.label_names))
    train, test = encode(tokenizer, data.splits["train"]), encode(tokenizer, data.splits["test"])
    steps = epochs * math.ceil(len(train) / BATCH_SIZE)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=WEIGHT_DECAY)
    scheduler = warmup_then_decay(optimizer, math.ceil(WARMUP_RATIO * steps), steps)
    lengths = [len(f["input_ids"]) for f in train]
    rng = random.Random(SEED)
    tokens = 0
    started = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        if grouped:
            order = step_batches(lengths, BATCH_SIZE, SEED, epoch)
        else:
            indices = list(range(len(train)))
            rng.shuffle(indices)
            order = [indices[i : i + BATCH_SIZE] for i in range(0, len(indices), BATCH_SIZE)]
        for batch_indices in order:
            batch = collate(tokenizer, [train[i] for i in batch_indices])
            model(**batch).loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            tokens += int(batch["attention_mask"].sum())
    wall = time.perf_counter() - started
    return {"wall_seconds": wall, "tokens_per_second": tokens / wall, "test_accuracy": accuracy(model, tokenizer, test)}


def run_hf_trainer(data, epochs: int, lr: float, grouped: bool = False, bf16: bool = False) -> dict:
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    model, tokenizer = build_model(len(data.label_names))
    train, test = encode(tokenizer, data.splits["train"]), encode(tokenizer, data.splits["test"])
    with tempfile.TemporaryDirectory() as output:
        arguments = TrainingArguments(
            output_dir=output,
            per_device_train_batch_size=BATCH_SIZE,
            num_train_epochs=epochs,
            learning_rate=lr,
            warmup_steps=WARMUP_RATIO,
            weight_decay=WEIGHT_DECAY,
            seed=SEED,  # a float is a ratio
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            use_cpu=True,
            train_sampling_strategy="group_by_length" if grouped else "random",
            bf16=bf16,
        )
        trainer = Trainer(
            model=model, args=arguments, train_dataset=train, data_collator=DataCollatorWithPadding(tokenizer)
        )
        started = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - started
    tokens = epochs * sum(len(f["input_ids"]) for f in train)
    return {"wall_seconds": wall, "tokens_per_second": tokens / wall, "test_accuracy": accuracy(model, tokenizer, test)}


def run_tunewright(limit: int, epochs: int, lr: float, extra: tuple[str, ...] = ()) -> dict:
    """``tunewright train`` in this process on the benchmark's settings, plus ``extra`` overrides."""
    from tunewright.cli import main

    with tempfile.TemporaryDirectory() as runs:
        overrides = [
            "data=banking77",
            f"data.limit={limit}",
            "data.validation_fraction=0",
            f"model.max_length={MAX_LENGTH}",
            f"method.r={RANK}",
            f"method.alpha={ALPHA}",
            f"method.dropout={DROPOUT}",
            f"method.target_modules=[{','.join(TARGETS)}]",
            f"trainer.batch_size={BATCH_SIZE}",
            f"trainer.max_epochs={epochs}",
            f"trainer.learning_rate={lr}",
            f"trainer.warmup_ratio={WARMUP_RATIO}",
            f"trainer.weight_decay={WEIGHT_DECAY}",
            f"seed={SEED}",
            "trainer.progress_bar=false",
            f"paths.runs_dir={runs}",
            "paths.run_id=benchmark",
            "audit=none",  # the trainer alone, like the others
            *extra,
        ]
        sys.argv = ["tunewright"]
        with open(os.devnull, "w") as quiet:
            stdout, sys.stdout = sys.stdout, quiet
            try:
                main(["train", *overrides])
            finally:
                sys.stdout = stdout
        results = json.loads((Path(runs) / "benchmark" / "results.json").read_text())
    train = results["train"]
    return {
        "wall_seconds": train["wall_seconds"],
        "tokens_per_second": train["tokens_per_second"],
        "test_accuracy": results["test"]["accuracy"],
    }


def run_variant(variant: str, limit: int, epochs: int, lr: float) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if variant.startswith("tunewright"):
        native = ("trainer.dropout_kernel=native",) if variant.endswith("native_dropout") else ()
        result = run_tunewright(limit, epochs, lr, native)
    else:
        data = load_splits(limit)
        if variant.startswith("hf_trainer"):
            result = run_hf_trainer(data, epochs, lr, grouped="grouped" in variant, bf16=variant.endswith("bf16"))
        else:
            result = run_plain(data, epochs, lr, grouped=variant == "plain_grouped")
    return {**result, "peak_rss_mb": peak_rss_mb()}


def median_run(measured: list[dict]) -> dict:
    """The run with the median training wall time (its own figures, not a mix)."""
    return sorted(measured, key=lambda r: r["wall_seconds"])[len(measured) // 2]


def table(results: dict[str, dict]) -> str:
    base = results["tunewright"]
    rows = [
        "| variant | train wall s | real tokens/s | peak RSS MiB | test accuracy | wall ratio | tokens/s ratio | RSS ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        rows.append(
            f"| {name} | {r['wall_seconds']:.1f} | {r['tokens_per_second']:.0f} | {r['peak_rss_mb']:.0f} | "
            f"{r['test_accuracy']:.4f} | {r['wall_seconds'] / base['wall_seconds']:.2f} | "
            f"{r['tokens_per_second'] / base['tokens_per_second']:.2f} | {r['peak_rss_mb'] / base['peak_rss_mb']:.2f} |"
        )
    return "\n".join(rows)


def main() -> None:
    global SEED  # a child process runs its variant with --seed
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=3000, help="BANKING77 examples, train and test together")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant; the median is reported")
    parser.add_argument("--seed", type=int, default=SEED, help="model initialisation, batch order and dropout")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # one variant, in a child process
    args = parser.parse_args()
    if args.variant:
        SEED = args.seed
        print(json.dumps(run_variant(args.variant, args.limit, args.epochs, args.lr)))
        return
    variants = args.variants.split(",")
    runs: dict[str, list[dict]] = {variant: [] for variant in variants}
    for round_number in range(args.repeats):
        # Rotate the order each round so no variant always runs first on a cold machine.
        for variant in variants[round_number % len(variants) :] + variants[: round_number % len(variants)]:
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--variant",
                    variant,
                    "--limit",
                    str(args.limit),
                    "--epochs",
                    str(args.epochs),
                    "--lr",
                    str(args.lr),
                    "--seed",
                    str(args.seed),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[variant].append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(f"round {round_number + 1} {variant}: {runs[variant][-1]}", file=sys.stderr)
    results = {variant: median_run(measured) for variant, measured in runs.items()}
    import torch

    from tunewright.precision import choose_precision

    print(f"tunewright's precision here: {choose_precision('auto', torch.device('cpu')).reason}")
    print(
        f"BANKING77 subset of {args.limit}, {args.epochs} epochs, lr {args.lr}, batch {BATCH_SIZE}, "
        f"max length {MAX_LENGTH}, seed {args.seed}; median of {args.repeats} run(s) per variant"
    )
    print(table(results))


if __name__ == "__main__":
    main()
