"""One prepared check for a lent CUDA GPU: tunewright against HF Trainer + PEFT on a
~1B-parameter Llama-shaped model, QLoRA, FSDP2 over NCCL and DeepSpeed ZeRO-3, written as
one JSON summary.

The model is built here from a config with random weights and a word-level tokenizer
(nothing downloaded); every training example is exactly ``--seq`` tokens (a short prompt
and a long response, truncated), so both trainers see the same tokens in the same
batches. Each part runs in its own process, so peak memory is its own, and a part
that fails is recorded with its error while the others go on:

1. ``lora_bf16``: ``tunewright train`` (LoRA, bf16 autocast) and ``transformers.Trainer``
   + PEFT with the same LoRA, optimiser, schedule, batch and ``bf16=True``; tokens/s,
   MFU against the GPU's bf16 peak (6 FLOPs per parameter per token), peak memory, and
   tunewright's ratio to HF Trainer.
2. ``qlora``: ``tunewright train method=qlora`` (4-bit base, needs bitsandbytes).
3. ``fsdp2``: ``torchrun --nproc_per_node 1 -m tunewright train trainer=fsdp`` (NCCL).
4. ``deepspeed_zero3``: the same under ``trainer=deepspeed trainer.deepspeed.config=zero3``
   (DeepSpeed's CUDA accelerator, bf16 in its engine); recorded as skipped where
   DeepSpeed is not installed.

Audits, monitors and trackers that need packages the GPU image lacks are off
(``experiment=sft`` has no audit; ``monitor=none``, ``tracker=local``).

    python benchmarks/gpu_check.py --out gpu_check.json     # on the GPU, about 5 minutes
    python benchmarks/gpu_check.py --smoke --out smoke.json  # a tiny model on the CPU

``benchmarks/gpu_check.sh`` installs what the GPU image lacks from a folder of wheels
and runs this; docs/benchmarks.md says how to prepare that folder.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Sizes: ~1.0B parameters with a 32,000-token vocabulary, and a tiny smoke model.
VOCABULARY = 32_000
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
FULL = {"hidden_size": 2048, "num_hidden_layers": 18, "num_attention_heads": 16, "intermediate_size": 5504}
SMOKE = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "targets": ["q_proj", "k_proj", "v_proj", "o_proj"]}
LEARNING_RATE, WARMUP_RATIO, WEIGHT_DECAY, MAX_GRAD_NORM, SEED = 2e-4, 0.1, 0.0, 1.0, 0
MFU_TARGET, RATIO_TARGET = 0.40, 1.3


def build_model(directory: Path, sizes: dict, seq: int) -> int:
    """A random Llama-shaped model and a word-level tokenizer over :data:`VOCABULARY`
    made-up words (one token each: no tokenizer to download or carry) saved in
    ``directory``; returns the model's parameter count."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    words = [*SPECIAL_TOKENS, *(f"w{i}" for i in range(VOCABULARY - len(SPECIAL_TOKENS)))]
    backend = Tokenizer(models.WordLevel({word: i for i, word in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    special = dict(zip(("pad_token", "unk_token", "bos_token", "eos_token"), SPECIAL_TOKENS))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **special)
    config = LlamaConfig(
        vocab_size=VOCABULARY,
        max_position_embeddings=seq,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
        **sizes,
    )
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return sum(p.numel() for p in model.parameters())


def write_data(directory: Path, rows: int, seq: int) -> dict[str, Path]:
    """Train, validation and test JSON lines of prompt/response pairs whose prompt and
    response together are longer than ``seq`` tokens, so truncation makes every example
    exactly ``seq`` tokens."""
    rng = random.Random(SEED)
    paths = {}
    for split, count in (("train", rows), ("validation", 4), ("test", 4)):
        paths[split] = directory / f"{split}.jsonl"
        with paths[split].open("w", encoding="utf-8") as out:
            for _ in range(count):
                prompt, response = (" ".join(f"w{rng.randrange(VOCABULARY - 4)}" for _ in range(n)) for n in (16, seq))
                out.write(json.dumps({"text": prompt, "response": response}) + "\n")
    return paths


def tunewright_overrides(model: Path, data: dict[str, Path], runs: Path, run_id: str, args) -> list[str]:
    return [
        "experiment=sft",
        "data=jsonl",
        f"data.train_path={data['train']}",
        f"data.validation_path={data['validation']}",
        f"data.test_path={data['test']}",
        "data.label_column=null",
        "data.response_column=response",
        f"model.name_or_path={model}",
        f"model.max_length={args.seq}",
        "model.use_chat_template=false",
        "model.generate_test_examples=0",
        f"method.r={LORA['r']}",
        f"method.alpha={LORA['alpha']}",
        f"method.dropout={LORA['dropout']}",
        f"method.target_modules=[{','.join(LORA['targets'])}]",
        f"trainer.batch_size={args.batch}",
        "trainer.max_epochs=1",
        f"trainer.learning_rate={LEARNING_RATE}",
        f"trainer.warmup_ratio={WARMUP_RATIO}",
        f"trainer.weight_decay={WEIGHT_DECAY}",
        f"trainer.max_grad_norm={MAX_GRAD_NORM}",
        f"trainer.precision={args.precision}",
        "trainer.progress_bar=false",
        "trainer.group_by_length=false",
        "monitor=none",
        "tracker=local",
        f"paths.runs_dir={runs}",
        f"paths.run_id={run_id}",
    ]


def run_tunewright(command: list[str], runs: Path, run_id: str, timeout: float) -> dict:
    """Run a ``tunewright train`` command line; the speed figures its run folder records."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip().splitlines() or ["no output"])[-1])
    train = json.loads((runs / run_id / "results.json").read_text())["train"]
    events = [json.loads(line) for line in (runs / run_id / "metrics.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["event"] == "train"]
    return {
        "tokens": round(train["tokens_per_second"] * train["wall_seconds"]),
        "tokens_per_second": train["tokens_per_second"],
        "wall_seconds": train["wall_seconds"],
        "steps": train["steps"],
        "peak_memory_mb": max(e["peak_memory_mb"] for e in steps),
        "mfu": max((e["mfu"] for e in steps if "mfu" in e), default=None),
    }


def hf_trainer(model: Path, train_path: Path, args) -> dict:
    """``transformers.Trainer`` + PEFT on the same examples, tokenised as tunewright's
    causal LM task does without a chat template (prompt template, loss on the response)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments
    from transformers.utils import logging

    logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(model)
    features = []
    for line in train_path.read_text().splitlines():
        row = json.loads(line)
        prompt = tokenizer(f"{row['text']}\n### Response:\n", add_special_tokens=False)["input_ids"]
        answer = tokenizer(row["response"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids = (prompt + answer)[: args.seq]
        labels = ([-100] * len(prompt) + answer)[: args.seq]
        features.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    torch.manual_seed(SEED)
    base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    lora = LoraConfig(
        task_type="CAUSAL_LM",
        r=LORA["r"],
        lora_alpha=LORA["alpha"],
        lora_dropout=LORA["dropout"],
        target_modules=LORA["targets"],
    )
    peft_model = get_peft_model(base, lora)
    with tempfile.TemporaryDirectory() as out:
        training = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=args.batch,
            num_train_epochs=1,
            learning_rate=LEARNING_RATE,
            warmup_steps=WARMUP_RATIO,  # a float below 1 is a share of the steps (transformers 5)
            weight_decay=WEIGHT_DECAY,
            max_grad_norm=MAX_GRAD_NORM,
            lr_scheduler_type="linear",
            bf16=args.precision == "bf16",
            save_strategy="no",
            report_to=[],
            logging_steps=10,
            seed=SEED,
            use_cpu=not torch.cuda.is_available(),
        )
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        Trainer(model=peft_model, args=training, train_dataset=features).train()
        wall = time.perf_counter() - started
    tokens = sum(len(f["input_ids"]) for f in features)
    parameters = sum(p.numel() for p in peft_model.parameters())
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from tunewright.throughput import model_flops_utilisation, peak_memory_mb

    return {
        "tokens": tokens,
        "tokens_per_second": tokens / wall,
        "wall_seconds": wall,
        "steps": -(-len(features) // args.batch),
        "peak_memory_mb": peak_memory_mb(device),
        "mfu": model_flops_utilisation(tokens / wall, parameters, device),
    }


def attempt(summary: dict, name: str, part, out: Path) -> None:
    """Run one part; record its figures or its error, and rewrite the summary atomically."""
    started = time.perf_counter()
    try:
        summary[name] = part()
    except Exception as error:  # noqa: BLE001 - a failed part is a result, the others still run
        summary[name] = {"error": f"{type(error).__name__}: {error}"}
    summary[name]["seconds"] = round(time.perf_counter() - started, 1)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps(summary, indent=2) + "\n")
    partial.replace(out)
    print(f"{name}: {json.dumps(summary[name])}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny model on the CPU: checks the script, not speed")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--hf-only", type=Path, help=argparse.SUPPRESS)  # the HF Trainer part's own process
    args = parser.parse_args()
    args.seq, args.batch, args.rows = (64, 4, 16) if args.smoke else (1024, 8, 480)
    args.precision = "fp32" if args.smoke else "bf16"  # emulated bf16 on a CPU measures nothing
    if args.hf_only:
        model, train_path = args.hf_only / "model", args.hf_only / "data" / "train.jsonl"
        print(json.dumps(hf_trainer(model, train_path, args)))
        return

    import torch
    import transformers

    summary: dict = {
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "smoke": args.smoke,
        "sequence_tokens": args.seq,
        "batch_size": args.batch,
        "train_rows": args.rows,
        "precision": args.precision,
    }
    budget = 180 if args.smoke else 420
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        summary["parameters"] = build_model(work / "model", SMOKE if args.smoke else FULL, args.seq)
        data = write_data(work / "data", args.rows, args.seq)
        runs = work / "runs"
        train = [sys.executable, "-m", "tunewright", "train"]

        def lora():
            ours = run_tunewright(
                [*train, *tunewright_overrides(work / "model", data, runs, "lora", args)], runs, "lora", budget
            )
            command = [sys.executable, __file__, "--hf-only", str(work), *(["--smoke"] if args.smoke else [])]
            done = subprocess.run(command, capture_output=True, text=True, timeout=budget)
            if done.returncode != 0:
                raise RuntimeError((done.stderr.strip().splitlines() or ["no output"])[-1])
            theirs = json.loads(done.stdout.strip().splitlines()[-1])
            ratio = ours["tokens_per_second"] / theirs["tokens_per_second"]
            return {"tunewright": ours, "hf_trainer_peft": theirs, "tokens_per_second_ratio": ratio}

        def qlora():
            overrides = [*tunewright_overrides(work / "model", data, runs, "qlora", args), "method=qlora"]
            return run_tunewright([*train, *overrides], runs, "qlora", budget)

        launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "-m", "tunewright"]

        def fsdp2():
            overrides = [*tunewright_overrides(work / "model", data, runs, "fsdp", args), "trainer=fsdp"]
            return run_tunewright([*launch, "train", *overrides], runs, "fsdp", budget)

        def deepspeed_zero3():
            overrides = [
                *tunewright_overrides(work / "model", data, runs, "zero3", args),
                "trainer=deepspeed",
                "trainer.deepspeed.config=zero3",
            ]
            return run_tunewright([*launch, "train", *overrides], runs, "zero3", budget)

        attempt(summary, "lora_bf16", lora, args.out)
        attempt(summary, "qlora", qlora, args.out)
        attempt(summary, "fsdp2", fsdp2, args.out)
        if importlib.util.find_spec("deepspeed") is None:
            summary["deepspeed_zero3"] = {"skipped": "DeepSpeed is not installed (docs/benchmarks.md: its wheels)"}
        else:
            attempt(summary, "deepspeed_zero3", deepspeed_zero3, args.out)
    lora_result = summary["lora_bf16"]
    if "tunewright" in lora_result and not args.smoke:
        summary["targets"] = {
            f"mfu >= {MFU_TARGET}": (lora_result["tunewright"]["mfu"] or 0) >= MFU_TARGET,
            f"ratio >= {RATIO_TARGET}": lora_result["tokens_per_second_ratio"] >= RATIO_TARGET,
        }
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
