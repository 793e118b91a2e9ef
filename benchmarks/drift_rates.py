"""False-alarm and detection rates of ``monitor=default``, and what monitoring costs.

For each seed, the bundled Amazon review sentences are shuffled and split: 600 train
the default model and method (3 epochs, so the run records its reference from its
held-out validation and test rows), the other 400 are in-domain batches. Then:

* false alarms: random in-domain batches of 50 and 200 rows (and all 400) drawn from
  the 400 held-out sentences, which the model never saw;
* detection: random batches of 50, 200 and 1000 rows of the Yelp and IMDB sentences
  of the same source (same task, other domains).

The tables count batches reported as drifted, and the layers that fired. The last
line times ``tunewright monitor``'s work (observe + compare + reports) on 1000 rows,
after imports, in this process.

    python benchmarks/drift_rates.py --seeds 5     # the tables in docs/governance.md
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tunewright.cli import main  # noqa: E402
from tunewright.monitoring import monitor_run  # noqa: E402
from tunewright.plugin_manager import get_plugins  # noqa: E402
from tunewright.plugins.datasets.ecommerce_reviews import DATA, DOMAIN_FILES  # noqa: E402
from tunewright.readers import read_separated_lines  # noqa: E402

LABELS = {"0": "negative", "1": "positive"}
IN_DOMAIN_SIZES, SHIFTED_SIZES = (50, 200, 400), (50, 200, 1000)


def rows_of(domain: str) -> list[tuple[str, str]]:
    return [(text, LABELS[label]) for _, text, label in read_separated_lines(DATA / DOMAIN_FILES[domain], "\t")]


def write_csv(path: Path, rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("text", "label"))
        writer.writerows(rows)
    return path


def monitor(run: Path, batch: Path) -> tuple[dict, float]:
    start = time.perf_counter()
    (report,) = monitor_run(run, ["data=csv", f"data.path={batch}"], get_plugins())
    return report, time.perf_counter() - start


def main_(seeds: int) -> None:
    amazon, shifted = rows_of("amazon"), {d: rows_of(d) for d in ("yelp", "imdb")}
    outcomes: dict[tuple[str, int], list[dict]] = defaultdict(list)
    timings = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for seed in range(seeds):
            rng = random.Random(seed)
            rows = amazon[:]
            rng.shuffle(rows)
            train = write_csv(root / f"train-{seed}.csv", rows[:600])
            held_out = rows[600:]
            code = main(
                [
                    "train",
                    "data=csv",
                    f"data.path={train}",
                    "trainer.max_epochs=3",
                    "audit=none",
                    "trainer.progress_bar=false",
                    f"paths.runs_dir={root}",
                    f"paths.run_id=seed{seed}",
                    f"seed={seed}",
                ]
            )
            assert code == 0
            run = root / f"seed{seed}"
            batches = [("amazon", n, rng.sample(held_out, n)) for n in IN_DOMAIN_SIZES]
            batches += [(d, n, rng.sample(shifted[d], n)) for d in shifted for n in SHIFTED_SIZES]
            for domain, size, sample in batches:
                report, seconds = monitor(run, write_csv(root / f"{domain}-{size}-{seed}.csv", sample))
                outcomes[(domain, size)].append(report)
                if size == 1000:
                    timings.append(seconds)
                print(
                    f"seed {seed} {domain:6} {size:5}: {report['status']:9} {report['windows'][0].get('drifted_layers')}",
                    file=sys.stderr,
                    flush=True,
                )
    print(f"\n{seeds} seeds (one training run each)\n")
    print("| batch | rows | reported drift | descriptors | embeddings | predictions | performance |")
    print("|---|---|---|---|---|---|---|")
    for (domain, size), reports in outcomes.items():
        fired = {
            layer: sum(layer in r["windows"][0]["drifted_layers"] for r in reports)
            for layer in ("descriptors", "embeddings", "predictions", "performance")
        }
        kind = "in-domain (false alarms)" if domain == "amazon" else f"{domain} (detections)"
        drifted = sum(r["drift_detected"] for r in reports)
        print(
            f"| {kind} | {size} | {drifted}/{len(reports)} | "
            + " | ".join(f"{fired[k]}/{len(reports)}" for k in fired)
            + " |"
        )
    print(
        f"\nmonitor on 1000 rows: {min(timings):.1f}-{max(timings):.1f} s (observe + compare + reports, after imports)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    main_(parser.parse_args().seeds)
