"""How long ``tunewright predict run=<folder> "text"`` takes for one sentence, and how
much of it is imports.

Each figure is the median of ``--repeats`` fresh processes (so every one pays its
imports, as a user's command does), the variants run in rotated order:

* ``predict``: the whole command, one sentence, the run's model loaded and applied;
* ``hand-written``: the same prediction in a dozen lines of transformers and peft (base
  model, adapter, tokenizer, one forward): the floor for a LoRA run;
* ``imports``: only importing what the command imports before it loads a model
  (``tunewright.cli``, ``tunewright.predictor`` and the plugin registry);
* ``python``: an empty interpreter, the floor under both.

With ``--before PACKAGES`` (a folder holding an earlier ``tunewright`` package, made by
``pip install --no-deps --target PACKAGES <earlier checkout>``) the same figures are
measured for that version too, in the same rounds, and the ratios printed.

    python benchmarks/predict_startup.py --run runs/<id>                       # this version
    python benchmarks/predict_startup.py --run runs/<id> --before /tmp/before  # docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

SENTENCE = "My card was declined at the shop"
# The same prediction written by hand with transformers and peft: the floor for a LoRA run.
HAND_WRITTEN = f"""
import json, sys, torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer
folder = sys.argv[1] + "/model"
labels = json.load(open(folder + "/labels.json"))["label_names"]
base = json.load(open(folder + "/adapter_config.json"))["base_model_name_or_path"]
model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(labels))
model = PeftModel.from_pretrained(model, folder).eval()
tokens = AutoTokenizer.from_pretrained(folder)([{SENTENCE!r}], return_tensors="pt")
with torch.inference_mode():
    probabilities = model(**tokens).logits.softmax(-1)[0].tolist()
print(json.dumps({{"label": labels[max(range(len(labels)), key=probabilities.__getitem__)]}}))
"""
COMMANDS = {
    "predict": ["-m", "tunewright", "predict", "run={run}", SENTENCE],
    "hand-written": ["-c", HAND_WRITTEN, "{run}"],
    "imports": [
        "-c",
        "import tunewright.cli, tunewright.predictor, tunewright.plugin_manager as p; p.get_plugins()",
    ],
    "python": ["-c", "pass"],
}


def wall(arguments: list[str], packages: str | None) -> float:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if packages:
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [packages, os.environ.get("PYTHONPATH")]))
    started = time.perf_counter()
    subprocess.run([sys.executable, *arguments], env=environment, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a finished run folder")
    parser.add_argument("--before", help="a folder with an earlier tunewright package to compare with")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    versions = {"this version": None, **({"before": args.before} if args.before else {})}
    cases = [("this version", name) for name in COMMANDS]
    if args.before:  # the hand-written prediction does not use tunewright: once is enough
        cases += [("before", name) for name in COMMANDS if name != "hand-written"]
    times: dict[tuple[str, str], list[float]] = {case: [] for case in cases}
    for round_number in range(args.repeats):
        shift = round_number % len(cases)
        for version, name in cases[shift:] + cases[:shift]:
            arguments = [part.replace("{run}", args.run) for part in COMMANDS[name]]
            times[version, name].append(wall(arguments, versions[version]))
    print(f"median of {args.repeats} fresh processes, seconds")
    print("| version | " + " | ".join(COMMANDS) + " |")
    print("|---|" + "---:|" * len(COMMANDS))
    medians = {case: statistics.median(values) for case, values in times.items()}
    for version in versions:
        cells = (f"{medians[version, name]:.2f}" if (version, name) in medians else "" for name in COMMANDS)
        print(f"| {version} | " + " | ".join(cells) + " |")
    if args.before:
        ratios = (
            f"{medians['before', n] / medians['this version', n]:.2f}" if ("before", n) in medians else ""
            for n in COMMANDS
        )
        print("| before / this version | " + " | ".join(ratios) + " |")


if __name__ == "__main__":
    main()
