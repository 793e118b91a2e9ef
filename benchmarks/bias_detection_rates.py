"""Detection and false-alarm rates of the counterfactual audit over several seeds.

For each seed, the embedded model is trained twice (3 epochs, through the CLI) on the
planted-bias data of ``tests/test_planted_bias.py``: once with labels planted by the
names' perceived gender (9 of each name's 10 labels), once with labels that follow the
sentences' sentiment and ignore the names. The table counts gender verdicts and
blocked releases: "planted -> fail" is the detection rate, "balanced -> fail" the
false-alarm rate.

    python benchmarks/bias_detection_rates.py --seeds 5     # the table in docs/governance.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from test_planted_bias import write_reviews  # noqa: E402

from tunewright.cli import main  # noqa: E402


def gender_result(root: Path, planted: bool, seed: int) -> dict:
    data = root / f"reviews-{planted}-{seed}.csv"
    write_reviews(data, planted, seed=seed)
    runs = root / f"runs-{planted}-{seed}"
    code = main(["train", "data=csv", f"data.path={data}", "data.labels=[negative,positive]", "model.max_length=32",
                 "trainer.max_epochs=3", "trainer.progress_bar=false", "monitor=none", f"seed={seed}",
                 f"paths.runs_dir={runs}", "paths.run_id=run"])  # fmt: skip
    assert code == 0
    record = json.loads((runs / "run" / "reports" / "bias.json").read_text())
    attributes = record["audits"]["counterfactual"]["attributes"]
    gender = attributes["gender"]
    return {"verdict": gender["verdict"], "flip_rate": gender["flip_rate"], "p_value": gender["p_value"],
            "release": record["release"]["allowed"],
            "failing": sorted(name for name, result in attributes.items() if result["verdict"] == "fail")}  # fmt: skip


def main_(seeds: int) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            for planted in (True, False):
                result = gender_result(Path(tmp), planted, seed)
                rows.append((planted, seed, result))
                print(f"seed {seed} {'planted' if planted else 'balanced'}: {result}", file=sys.stderr, flush=True)
    print(f"\n{seeds} seeds\n")
    print("| data | gender fail | warn | pass | release blocked | flip rate (min-max) | p (max) | attributes failing (runs) |")
    print("|---|---|---|---|---|---|---|---|")
    for planted in (True, False):
        results = [r for p, _, r in rows if p == planted]
        verdicts = Counter(r["verdict"] for r in results)
        flips = [r["flip_rate"] for r in results]
        print(f"| {'planted' if planted else 'balanced'} | {verdicts['fail']}/{len(results)} | {verdicts['warn']}/{len(results)} "
              f"| {verdicts['pass']}/{len(results)} | {sum(not r['release'] for r in results)}/{len(results)} "
              f"| {min(flips):.3f}-{max(flips):.3f} | {max(r['p_value'] for r in results):.3g} "
              f"| {', '.join(f'{a} ({n})' for a, n in sorted(Counter(a for r in results for a in r['failing']).items()))} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    main_(parser.parse_args().seeds)
