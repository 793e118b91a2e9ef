"""``tunewright export format=onnx``: a tiny BERT classifier exported, checked, quantised and
run on onnxruntime without PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import tiny_lm_overrides, tiny_run_overrides
from edge_runtime import FP32_RUN, predict_without_pytorch

from tunewright.cli import main
from tunewright.edge_predictor import EdgePredictor
from tunewright.errors import ReleaseBlockedError, TunewrightError
from tunewright.export import export_run
from tunewright.governance.probes import ATTRIBUTES
from tunewright.predictor import load_run

TEXTS = ["Battery died in a day.", "Great value, works perfectly.", "It is fine, I guess."]


LEARNS = ("method=full", "data.limit=400", "trainer.max_epochs=6", "trainer.learning_rate=2e-3")  # above chance


@pytest.fixture(scope="module")
def run(tiny_bert, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert (
        main(["train", *tiny_run_overrides(tiny_bert, runs, "paths.run_id=edge", "audit=none", FP32_RUN, *LEARNS)]) == 0
    )
    assert json.loads((runs / "edge" / "results.json").read_text())["test"]["accuracy"] > 0.6
    return runs / "edge"


def test_the_fp32_artifact_reproduces_the_run_and_says_how_it_was_checked(run, capsys):
    assert main(["export", f"run={run}", "format=onnx", "override=tested before release"]) == 0
    out = capsys.readouterr().out
    folder = run / "export-onnx"
    assert f"exported to {folder}" in out and "checked on" in out
    check = json.loads((folder / "edge.json").read_text())["check"]
    assert check["agreement"] == 1.0 and check["max_probability_difference"] < 1e-4
    assert check["test_rows"] == len((run / "test_predictions.jsonl").read_text().splitlines())
    assert check["artifact"] == pytest.approx(check["pytorch"], abs=1e-9)
    expected = load_run(run).probabilities(TEXTS)
    assert EdgePredictor(folder).probabilities(TEXTS) == pytest.approx(expected, abs=1e-5)
    pairs = [{"text": "Is it waterproof?", "text_pair": "Yes, to one metre."}]  # segment ids reach the graph too
    assert EdgePredictor(folder).probabilities(pairs) == pytest.approx(load_run(run).probabilities(pairs), abs=1e-5)
    card = (folder / "README.md").read_text()
    assert "## Deployment artifact" in card and "ONNX, fp32" in card
    (entry,) = [e for e in json.loads((run / "manifest.json").read_text())["exports"] if e.get("format") == "onnx"]
    assert entry["check"] == check and entry["override"]["reason"] == "tested before release"

    assert main(["predict", f"run={folder}", TEXTS[0]]) == 0  # the CLI predicts from the artifact
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert printed["text"] == TEXTS[0] and printed["probabilities"] == pytest.approx(
        dict(zip(EdgePredictor(folder).label_names, expected[0])), abs=1e-5
    )


def test_int8_is_smaller_and_keeps_the_predictions(run):
    fp32 = export_run(run, run.parent / "fp32", override="tested", format="onnx")
    # 79 test rows: one changed prediction is 1.3 points, so the drop allowed here is three of them.
    int8 = export_run(run, None, override="tested", format="onnx", quantize="int8", max_metric_drop=0.05)
    assert int8 == run / "export-onnx-int8"
    assert (int8 / "model.onnx").stat().st_size < (fp32 / "model.onnx").stat().st_size / 2
    check = json.loads((int8 / "edge.json").read_text())["check"]
    assert check["pytorch"]["accuracy"] - check["artifact"]["accuracy"] <= 0.05 and check["agreement"] >= 0.95
    assert "ONNX, int8 weights" in (int8 / "README.md").read_text()


def test_a_planted_drop_is_refused_and_leaves_nothing_behind(run, monkeypatch):
    real = EdgePredictor.logits
    monkeypatch.setattr(EdgePredictor, "logits", lambda self, inputs: real(self, inputs)[:, ::-1])  # a broken graph
    target = run.parent / "broken"
    with pytest.raises(TunewrightError, match="below the PyTorch model on the test split"):
        export_run(run, target, override="tested", format="onnx", max_metric_drop=0.01)
    assert not target.exists()  # refused before it stood
    shipped = export_run(run, target, override="tested", format="onnx", accept_drop="a known-broken build")
    assert json.loads((shipped / "edge.json").read_text())["check"]["drop_accepted"] == "a known-broken build"


def test_the_edge_runtime_needs_no_pytorch(run):
    folder = export_run(run, run.parent / "no-torch", override="tested", format="onnx")
    answers = predict_without_pytorch(folder, TEXTS)
    expected = load_run(run).predict(TEXTS)
    assert [a["label"] for a in answers] == [e["label"] for e in expected]
    assert np.allclose(
        [list(a["probabilities"].values()) for a in answers],
        [list(e["probabilities"].values()) for e in expected],
        atol=1e-5,
    )


def test_what_cannot_be_exported_says_why(tiny_bert, tiny_gpt2, tmp_path, run):
    assert (
        main(["train", *tiny_run_overrides(tiny_bert, tmp_path, "paths.run_id=prompt", "audit=none", "method=prompt")])
        == 0
    )
    with pytest.raises(TunewrightError, match="method=prompt cannot be merged into plain weights"):
        export_run(tmp_path / "prompt", override="tested", format="onnx")
    with pytest.raises(TunewrightError, match="quantize='int4': one of int8"):
        export_run(run, run.parent / "int4", override="tested", format="onnx", quantize="int4")
    with pytest.raises(TunewrightError, match="quantize= applies to format=onnx"):
        export_run(run, run.parent / "hf", override="tested", quantize="int8")
    assert main(["train", *tiny_lm_overrides(tiny_gpt2, tmp_path, "lm")]) == 0
    with pytest.raises(TunewrightError, match="model=causal_lm is not exported to ONNX yet.*merged=true"):
        export_run(tmp_path / "lm", override="tested", format="onnx")
    assert not (tmp_path / "lm" / "export-onnx").exists()


def test_the_artifact_is_audited_again_and_one_biased_by_its_build_is_blocked(tiny_bert, tmp_path, monkeypatch):
    # Limits a tiny model's chance-level spread between groups stays inside, so the run itself may ship.
    policy = tmp_path / "wide.yaml"
    policy.write_text(
        "name: wide\nblocking: true\nmin_group_size: 10\nsignificance: 0.05\nconfidence: 0.95\n"
        "inconclusive: report\nchecks:\n  flip_rate: {max: 0.6}\n  label_distribution_distance: {max: 0.6}\n"
        "  demographic_parity_ratio: {min: 0.2}\n"
    )
    overrides = tiny_run_overrides(tiny_bert, tmp_path, "paths.run_id=audited", f"audit.policy={policy}", *LEARNS)
    assert main(["train", *overrides]) == 0
    audited = tmp_path / "audited"
    bias = json.loads((audited / "reports" / "bias.json").read_text())
    assert bias["release"]["allowed"], bias["release"]  # the run itself may ship
    faithful = export_run(audited, tmp_path / "fp32", format="onnx")
    audit = json.loads((faithful / "edge.json").read_text())["audit"]
    assert audit["verdicts"] == audit["run_verdicts"] == {n: a["verdict"] for n, a in bias["audits"].items()}
    assert (
        audit["release"]["allowed"] and "counterfactual audit (run → artifact)" in (faithful / "README.md").read_text()
    )
    assert json.loads((audited / "reports" / "bias.json").read_text()) == bias  # the run's own report stands

    women, men = ATTRIBUTES["gender"]["female"], ATTRIBUTES["gender"]["male"]
    real = EdgePredictor.logits

    def favours_men(self, inputs):  # a build that calls every text naming a woman negative, a man positive
        logits = real(self, inputs)
        for row, value in zip(logits, inputs):
            for names, favoured in ((women, 0), (men, len(row) - 1)):
                if any(name in str(value) for name in names):
                    row[:] = -10.0
                    row[favoured] = 10.0
        return logits

    monkeypatch.setattr(EdgePredictor, "logits", favours_men)
    target = tmp_path / "biased"
    with pytest.raises(ReleaseBlockedError, match="artifact's own bias audits block its release: counterfactual"):
        export_run(audited, target, format="onnx", accept_drop="measured separately")
    assert not target.exists()
    shipped = export_run(audited, target, format="onnx", accept_drop="measured separately", override="field trial")
    audit = json.loads((shipped / "edge.json").read_text())["audit"]
    assert audit["verdicts"]["counterfactual"] == "fail" and audit["override"] == "field trial"
    (entry,) = [e for e in json.loads((audited / "manifest.json").read_text())["exports"] if e["path"] == str(shipped)]
    assert entry["audit"]["release"]["allowed"] is False
