"""``tunewright tune`` against the default configuration and random search, on BANKING77.

Three ways to choose a LoRA run of the default model (all-MiniLM-L6-v2) on a subset
of the bundled BANKING77 intents (77 classes), each in its own process, one after the
other:

* ``default``: ``tunewright train`` with the default configuration;
* ``tuned``: ``tunewright tune`` with N trials (TPE, median pruning), the default space;
* ``random``: the same N trials drawn at random, none pruned (the anchor every search
  is measured against).

Every trial maximises validation accuracy; the table reports the recommended trial's
test accuracy (never used to choose), the wall time, how many trials were pruned, and
the share of planned training steps the pruner saved. Audits are off (audit=none):
this measures the search, not the audits.

    python benchmarks/tune_quality.py --limit 1000 --trials 6                   # docs/benchmarks.md
    python benchmarks/tune_quality.py --limit 1000 --trials 8 --eval-every 25   # more chances to prune

Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def tunewright(*args: str) -> float:
    """Run a tunewright command; its wall time in seconds."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tunewright", *args], check=True, capture_output=True, text=True)
    return time.perf_counter() - began


def study_figures(folder: Path) -> dict:
    """The recommended trial's test accuracy, trials pruned, and steps trained of those planned."""
    study = json.loads((folder / "study.json").read_text())
    best = next(t for t in study["trials"] if t["number"] == study["recommended"]["number"])
    trained = planned = 0
    examples = None
    for trial in study["trials"]:
        run = folder / "trials" / trial["run_id"]
        if trial["state"] == "complete":
            results = json.loads((run / "results.json").read_text())
            examples = results["data"]["train"]
            trained += results["train"]["steps"]
            planned += results["train"]["steps"]
    for trial in study["trials"]:
        if trial["state"] == "pruned":
            manifest = json.loads((folder / "trials" / trial["run_id"] / "manifest.json").read_text())
            params = trial["params"]
            trained += manifest["pruned"]["step"]
            planned += params["trainer.max_epochs"] * math.floor(examples / params["trainer.batch_size"])
    return {
        "test_accuracy": best["test"]["accuracy"],
        "pruned": sum(t["state"] == "pruned" for t in study["trials"]),
        "steps_saved": 1 - trained / planned if planned else 0.0,
        "recommended": best["params"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=1000, help="BANKING77 examples (split 80/10/10)")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--eval-every", type=int, default=0, help="trainer.eval_every_n_steps (0: once per epoch)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        run = ["data=banking77", f"data.limit={args.limit}", "audit=none", "trainer.progress_bar=false"]
        run.append(f"trainer.eval_every_n_steps={args.eval_every}")
        rows = []
        wall = tunewright("train", *run, f"paths.runs_dir={scratch / 'default'}", "paths.run_id=default")
        results = json.loads((scratch / "default" / "default" / "results.json").read_text())
        rows.append({"variant": "default", "test_accuracy": results["test"]["accuracy"], "wall_s": wall})
        for variant, options in (
            ("tuned", ["tune.sampler=tpe", "tune.pruner=median"]),
            ("random", ["tune.sampler=random", "tune.pruner=none"]),
        ):
            runs_dir = scratch / variant
            wall = tunewright("tune", *run, f"paths.runs_dir={runs_dir}", f"tune.trials={args.trials}", *options)
            (folder,) = runs_dir.glob("tune-*")
            rows.append({"variant": variant, "wall_s": wall, **study_figures(folder)})
    default = rows[0]
    every = f"every {args.eval_every} steps" if args.eval_every else "once per epoch"
    print(f"BANKING77, {args.limit} examples, {args.trials} trials per search, validated {every}\n")
    print("| variant | test accuracy | vs default | wall s | trials pruned | steps the pruner saved |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['variant']} | {row['test_accuracy']:.4f} | {row['test_accuracy'] - default['test_accuracy']:+.4f} | "
            f"{row['wall_s']:.0f} | {row.get('pruned', '')} | "
            + (f"{row['steps_saved']:.0%}" if "steps_saved" in row else "")
            + " |"
        )
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
