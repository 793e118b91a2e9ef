"""What ``trainer.compile=true`` costs and saves on this machine: compile time and
steady-state step time, measured separately.

Runs ``tunewright train`` with trainer_speed.py's settings (all-MiniLM-L6-v2, LoRA r=8
on query/value, a BANKING77 subset, batch 32, max length 64, length-grouped batches)
once eagerly and once compiled, each in its own process, timing every optimizer step.
Length-grouped batches change the sequence length from step to step, so the compiled
run recompiles for new shapes until ``torch.compile`` marks the length dynamic; the
overhead is every compiled step's excess over the compiled steady state (its median
over the last half of the run), and the break-even point is that overhead over the
time each steady step saves.

    python benchmarks/compile_cost.py            # docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys


def timed_run(limit: int, epochs: int, compiled: bool) -> list[float]:
    """Every optimizer step's wall seconds in one ``tunewright train`` (in this process)."""
    from step_profile import instrument
    from trainer_speed import run_tunewright

    step_walls: list[float] = []
    instrument(step_walls)
    run_tunewright(limit, epochs, 2e-3, (f"trainer.compile={str(compiled).lower()}",))
    return step_walls


def summary(eager: list[float], compiled: list[float]) -> dict[str, float]:
    steady_eager = statistics.median(eager[len(eager) // 2 :])
    steady_compiled = statistics.median(compiled[len(compiled) // 2 :])
    overhead = sum(max(0.0, wall - steady_compiled) for wall in compiled)
    saving = steady_eager - steady_compiled
    return {
        "steps": len(compiled),
        "first_step_s": compiled[0],
        "slow_steps": sum(wall > 2 * steady_compiled for wall in compiled),
        "compile_overhead_s": overhead,
        "steady_eager_ms": steady_eager * 1000,
        "steady_compiled_ms": steady_compiled * 1000,
        "steady_speedup": steady_eager / steady_compiled,
        "break_even_steps": overhead / saving if saving > 0 else float("inf"),
        "eager_total_s": sum(eager),
        "compiled_total_s": sum(compiled),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=2000, help="BANKING77 examples, train and test together")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--compiled", choices=("true", "false"), help=argparse.SUPPRESS)  # in a child process
    args = parser.parse_args()
    if args.compiled:
        print(json.dumps(timed_run(args.limit, args.epochs, args.compiled == "true")))
        return
    walls = {}
    for compiled in ("false", "true"):
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--limit",
                str(args.limit),
                "--epochs",
                str(args.epochs),
                "--compiled",
                compiled,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        walls[compiled] = json.loads(child.stdout.strip().splitlines()[-1])
    result = summary(walls["false"], walls["true"])
    print(f"BANKING77 subset of {args.limit}, {args.epochs} epochs, {result['steps']} optimizer steps")
    print("| figure | value |")
    print("|---|---:|")
    for name, value in result.items():
        print(f"| {name} | {value:.2f} |" if isinstance(value, float) else f"| {name} | {value} |")


if __name__ == "__main__":
    main()
