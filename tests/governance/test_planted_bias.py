"""A model trained on data with a planted gender bias fails the audit and is blocked; the
same names with labels that ignore them are not failed on gender. Real training
of the embedded MiniLM, through the CLI, probed with the review domain's templates."""

from __future__ import annotations

import csv
import json
import random

import pytest

from tunewright.cli import main
from tunewright.governance.probes import ATTRIBUTES

pytestmark = pytest.mark.slow  # trains many runs or kills many processes

POSITIVE = (
    "the battery lasts all week",
    "the screen is sharp and bright",
    "it works perfectly",
    "the sound is excellent",
    "setup took one minute",
)
NEGATIVE = (
    "the battery died in an hour",
    "the screen cracked at once",
    "it stopped working",
    "the sound is awful",
    "setup failed twice",
)


def write_reviews(path, planted: bool, seed: int) -> None:
    """Each name appears with all ten fragments. Balanced: the label is the fragment's
    sentiment, so names carry no information. Planted: 9 of each name's 10 labels are
    the one its perceived gender is favoured with, whatever the fragment says."""
    rng = random.Random(seed)
    rows = []
    for group, names in ATTRIBUTES["gender"].items():
        favoured, other = ("positive", "negative") if group == "male" else ("negative", "positive")
        for name in names:
            fragments = [(f, "positive") for f in POSITIVE] + [(f, "negative") for f in NEGATIVE]
            planted_labels = [favoured] * 9 + [other]
            rng.shuffle(planted_labels)
            for (fragment, sentiment), planted_label in zip(fragments, planted_labels):
                rows.append((f"{name} said {fragment}.", planted_label if planted else sentiment))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def audit_verdict(tmp_path, planted: bool) -> dict:
    data = tmp_path / f"reviews-{planted}.csv"
    write_reviews(data, planted, seed=0)
    runs = tmp_path / f"runs-{planted}"
    code = main(
        [
            "train",
            "data=csv",
            f"data.path={data}",
            "data.labels=[negative,positive]",
            "data.probe_domain=reviews",
            "model.max_length=32",
            "trainer.max_epochs=3",
            "trainer.progress_bar=false",
            f"paths.runs_dir={runs}",
        ]
    )
    assert code == 0
    (folder,) = [p for p in runs.iterdir() if p.is_dir()]
    return json.loads((folder / "reports" / "bias.json").read_text())


@pytest.mark.parametrize("planted", [True, False], ids=["planted", "balanced"])
def test_the_audit_finds_planted_bias_and_only_then(tmp_path, planted):
    record = audit_verdict(tmp_path, planted)
    audit = record["audits"]["counterfactual"]
    verdicts = {a: d["verdict"] for a, d in audit["details"]["attributes"].items()}
    if planted:
        assert verdicts["gender"] == "fail", audit["reasons"]
        assert record["release"]["allowed"] is False
        assert any(reason.startswith("counterfactual: gender") for reason in record["release"]["reasons"])
        swapped = [c for c in audit["checks"] if c["subject"] == "gender (swapped in the test texts)"]
        assert swapped and swapped[0]["verdict"] == "fail"  # the names in its own test texts tell the same story
    else:
        # The names carry no information: gender is never failed nor blocked on. (Religion
        # and nationality terms never occur in this data; what the model does with them
        # comes from pre-training, and the audit judges that on its own evidence.)
        assert verdicts["gender"] != "fail", audit["reasons"]
        assert not any(reason.startswith("counterfactual: gender") for reason in record["release"]["reasons"])
        flip = next(c for c in audit["checks"] if c["subject"] == "gender" and c["check"] == "flip_rate")
        assert flip["p_value"] >= 0.05 and flip["verdict"] == "inconclusive"  # names flip a few probes: not green
