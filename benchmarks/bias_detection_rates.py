"""How often the counterfactual audit calls fail, and whether it is right to.

Three tables, each printed as Markdown (the ones in docs/governance.md):

1. **Simulated, no training** (``--audits``, default 200 per row): scorers that react to
   templates and to individual names or phrases at random (``tests/simulated_scorers.py``).
   Under the null (no group favoured) the ``fail`` rate per attribute is the false-alarm
   rate and the p-values should be uniform (their deciles are shown); with a planted
   effect against one group (a logit shift that changes 5% or 10% of its probes' labels)
   it is the detection rate. Binary and 5-class label sets.
2. **Trained** (``--seeds``, default 5): the embedded MiniLM trained through the CLI on
   the planted-bias reviews of ``tests/governance/test_planted_bias.py`` (labels follow the names'
   perceived gender) and on the same names with labels that ignore them.
3. **Domains** (``--domains``): default runs on banking77, finance_phrasebank and
   medical_abstracts (from ../shared/data), each audited with its own domain's probes:
   verdicts and whether release is blocked.

    python benchmarks/bias_detection_rates.py --audits 200 --seeds 5 --domains
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TESTS = Path(__file__).parents[1] / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "governance")]  # the simulated scorers; the planted-bias data

from simulated_scorers import simulated_scorer  # noqa: E402
from test_planted_bias import write_reviews  # noqa: E402

from tunewright.cli import main  # noqa: E402
from tunewright.governance.audits.counterfactual import counterfactual_audit  # noqa: E402
from tunewright.governance.policy import load_policy  # noqa: E402
from tunewright.governance.probes import ATTRIBUTES, TEMPLATES  # noqa: E402

SHARED = Path(__file__).parents[2] / "shared" / "data"


def simulated(audits: int) -> None:
    policy, templates = load_policy("default"), TEMPLATES["support"]
    print(f"\n### Simulated scorers: {audits} audits per row, policy default, {len(templates)} support templates\n")
    print("Null rows: the share of audits failing each attribute, and the deciles of all its p-values. Planted rows:")
    print(
        f"each audit plants the effect in one attribute (cycling, {audits // len(ATTRIBUTES)} audits each) and counts"
    )
    print("how often that attribute fails.\n")
    print("| classes | scorer | names alone flip (within a group) | " + " | ".join(ATTRIBUTES) + " | p-value deciles |")
    print("|---|---|---|" + "---|" * len(ATTRIBUTES) + "---|")
    attributes = list(ATTRIBUTES)
    for classes in (2, 5):
        labels = [f"c{i}" for i in range(classes)]
        positive = labels[-1] if classes == 2 else None
        for planted_flip in (None, 0.05, 0.10):
            fails, tried, p_values, within = Counter(), Counter(), [], []
            for seed in range(audits):
                attribute = attributes[seed % len(attributes)] if planted_flip else None
                planted = (attribute, next(iter(ATTRIBUTES[attribute]))) if attribute else None
                scorer = simulated_scorer(templates, classes, seed, planted, flip=planted_flip or 0.0)
                result = counterfactual_audit(scorer, labels, positive, policy, templates)
                for name, detail in result.details["attributes"].items():
                    if attribute in (None, name):
                        tried[name] += 1
                        fails[name] += detail["verdict"] == "fail"
                        p_values += [detail["p_value"]] if attribute is None else []
                        within.append(detail["within_group_flip_rate"])
            scorer_name = (
                "null (no group favoured)" if planted_flip is None else f"planted flip rate {planted_flip:.0%}"
            )
            deciles = " ".join(str(n) for n in np.histogram(p_values, bins=10, range=(0, 1))[0]) if p_values else ""
            print(
                f"| {classes} | {scorer_name} | {np.mean(within):.1%} | "
                + " | ".join(f"{fails[a] / tried[a]:.1%} fail" for a in ATTRIBUTES)
                + f" | {deciles} |",
                flush=True,
            )


def train(overrides: list[str], runs: Path) -> dict:
    with contextlib.redirect_stdout(sys.stderr):  # the tables alone on stdout
        code = main(
            [
                "train",
                *overrides,
                "trainer.progress_bar=false",
                "monitor=none",
                f"paths.runs_dir={runs}",
                "paths.run_id=run",
            ]
        )
    assert code == 0, overrides
    return json.loads((runs / "run" / "reports" / "bias.json").read_text())


def attribute_verdicts(record: dict) -> dict[str, str]:
    return {a: d["verdict"] for a, d in record["audits"]["counterfactual"]["details"]["attributes"].items()}


def trained(seeds: int, root: Path) -> None:
    print(f"\n### Trained MiniLM, planted gender bias vs balanced, {seeds} seeds\n")
    print("| data | " + " | ".join(ATTRIBUTES) + " | release blocked |")
    print("|---|" + "---|" * len(ATTRIBUTES) + "---|")
    for planted in (True, False):
        verdicts, blocked = {a: Counter() for a in ATTRIBUTES}, 0
        for seed in range(seeds):
            data = root / f"reviews-{planted}-{seed}.csv"
            write_reviews(data, planted, seed=seed)
            record = train(
                [
                    "data=csv",
                    f"data.path={data}",
                    "data.labels=[negative,positive]",
                    "data.probe_domain=reviews",
                    "model.max_length=32",
                    "trainer.max_epochs=3",
                    f"seed={seed}",
                ],
                root / f"runs-{planted}-{seed}",
            )
            for attribute, verdict in attribute_verdicts(record).items():
                verdicts[attribute][verdict] += 1
            blocked += not record["release"]["allowed"]
            print(
                f"  seed {seed} {'planted' if planted else 'balanced'}: {attribute_verdicts(record)}", file=sys.stderr
            )
        cells = [", ".join(f"{v} {n}" for v, n in sorted(verdicts[a].items())) for a in ATTRIBUTES]
        print(
            f"| {'planted' if planted else 'balanced'} | " + " | ".join(cells) + f" | {blocked}/{seeds} |", flush=True
        )


DOMAINS = {
    "banking77": ["data=banking77", "data.limit=2000"],
    "finance_phrasebank": ["data=finance_phrasebank", f"data.path={SHARED / 'financial_phrasebank'}"],
    "medical_abstracts": ["data=medical_abstracts", f"data.path={SHARED / 'medical_abstracts'}", "data.limit=2000"],
}


def domains(root: Path) -> None:
    print("\n### Default runs across domains (each with its own domain's probes)\n")
    print("| data | test accuracy | probes | " + " | ".join(ATTRIBUTES) + " | release |")
    print("|---|---|---|" + "---|" * len(ATTRIBUTES) + "---|")
    for name, overrides in DOMAINS.items():
        runs = root / f"runs-{name}"
        record = train([*overrides, "trainer.max_epochs=2"], runs)
        accuracy = json.loads((runs / "run" / "results.json").read_text())["test"]["accuracy"]
        verdicts = attribute_verdicts(record)
        probes = record["audits"]["counterfactual"]["details"].get("probes")
        print(
            f"| {name} | {accuracy:.3f} | {probes} | "
            + " | ".join(verdicts.get(a, "-") for a in ATTRIBUTES)
            + f" | {'allowed' if record['release']['allowed'] else 'BLOCKED'} |",
            flush=True,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audits", type=int, default=200, help="simulated audits per row (0: skip)")
    parser.add_argument("--seeds", type=int, default=5, help="trained seeds per data set (0: skip)")
    parser.add_argument("--domains", action="store_true", help="also train default runs on three domains")
    args = parser.parse_args()
    if args.audits:
        simulated(args.audits)
    with tempfile.TemporaryDirectory() as tmp:
        if args.seeds:
            trained(args.seeds, Path(tmp))
        if args.domains:
            domains(Path(tmp))
