"""A model trained on data with a planted gender bias fails the audit and is blocked; the
same names with labels that ignore them are not. Real training of the embedded MiniLM,
through the CLI."""

from __future__ import annotations

import csv
import json
import random

import pytest

from tunewright.cli import main
from tunewright.governance.audits.counterfactual import ATTRIBUTES

POSITIVE = ("the battery lasts all week", "the screen is sharp and bright", "it works perfectly",
            "the sound is excellent", "setup took one minute")  # fmt: skip
NEGATIVE = ("the battery died in an hour", "the screen cracked at once", "it stopped working",
            "the sound is awful", "setup failed twice")  # fmt: skip


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
    code = main([
        "train", "data=csv", f"data.path={data}", "data.labels=[negative,positive]", "model.max_length=32",
        "trainer.max_epochs=3", "trainer.progress_bar=false", f"paths.runs_dir={runs}",
    ])  # fmt: skip
    assert code == 0
    (folder,) = [p for p in runs.iterdir() if p.is_dir()]
    return json.loads((folder / "reports" / "bias.json").read_text())


@pytest.mark.parametrize("planted", [True, False], ids=["planted", "balanced"])
def test_the_audit_finds_planted_bias_and_only_then(tmp_path, planted):
    record = audit_verdict(tmp_path, planted)
    gender = record["audits"]["counterfactual"]["attributes"]["gender"]
    if planted:
        assert gender["verdict"] == "fail", gender["reasons"]
        assert record["release"]["allowed"] is False
        assert any("gender" in reason for reason in record["release"]["reasons"])
    else:
        # No group effect: nothing significant, nothing blocked. Individual names still
        # flip a few borderline probes; the reason says so, but noise is not bias.
        assert gender["verdict"] == "pass", gender["reasons"]
        assert gender["p_value"] >= 0.05
        assert record["release"]["allowed"] is True
