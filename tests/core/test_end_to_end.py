"""The embedded default, end to end on a slice: run folder, reload, predict, sweep."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from conftest import tiny_run_overrides

import tunewright
from tunewright.cli import main
from tunewright.errors import RunFolderError

pytestmark = pytest.mark.slow  # trains many runs or kills many processes


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """`tunewright train` on 300 bundled examples, 3 epochs: the real MiniLM and LoRA."""
    runs = tmp_path_factory.mktemp("runs")
    code = main(
        ["train", "data.limit=300", "trainer.max_epochs=3", "trainer.progress_bar=false", f"paths.runs_dir={runs}"]
    )
    assert code == 0
    (folder,) = runs.iterdir()
    return folder


def test_run_folder_holds_the_whole_record(default_run):
    for name in (
        "config.yaml",
        "results.json",
        "metrics.jsonl",
        "manifest.json",
        "test_predictions.jsonl",
        "data_card.json",
        "data_card.md",
    ):
        assert (default_run / name).is_file(), name
    model = default_run / "model"
    assert (model / "adapter_model.safetensors").is_file()
    assert (model / "adapter_config.json").is_file()
    assert (model / "tokenizer.json").is_file()
    assert not list(model.glob("*.bin")) and not list(model.glob("*.pt"))

    results = json.loads((default_run / "results.json").read_text())
    assert set(results["test"]) >= {"accuracy", "f1_macro", "loss"}
    assert set(results["train"]) >= {"wall_seconds", "tokens_per_second", "trainable_parameters"}
    card = json.loads((default_run / "data_card.json").read_text())
    rows = {split: c["rows"] for split, c in card["composition"].items()}
    assert results["data"] == rows and rows["train"] == 210  # two test sentences repeat train ones
    assert sum(s["rows_in"] - s["rows_out"] for s in card["cleaning"]) == 300 - sum(rows.values())
    assert 0 < results["train"]["trainable_parameters"] < results["train"]["total_parameters"] / 20

    bias = json.loads((default_run / "reports" / "bias.json").read_text())
    assert bias["schema_version"] == 2 and set(bias["audits"]) == {"counterfactual"}
    counterfactual = bias["audits"]["counterfactual"]
    assert set(counterfactual["details"]["attributes"]) == {"gender", "race", "religion", "age", "nationality"}
    assert counterfactual["details"]["probes"] == "domain reviews"  # the review data's own probes
    assert {c["check"] for c in counterfactual["checks"]} >= {
        "flip_rate",
        "label_distribution_distance",
        "demographic_parity_ratio",
    }
    assert results["audits"]["verdicts"]["counterfactual"] == bias["audits"]["counterfactual"]["verdict"]
    assert results["audits"]["release"] == bias["release"]
    assert "<h1>Bias report" in (default_run / "reports" / "bias.html").read_text()

    events = [json.loads(line) for line in (default_run / "metrics.jsonl").read_text().splitlines()]
    assert {e["event"] for e in events} == {"train", "eval"}
    assert [e["split"] for e in events if e["event"] == "eval"] == ["validation"] * 3 + ["test"]
    assert all(np.isfinite(e["loss"]) for e in events)


def test_accuracy_beats_the_majority_class(default_run):
    results = json.loads((default_run / "results.json").read_text())
    rows = [json.loads(line) for line in (default_run / "test_predictions.jsonl").read_text().splitlines()]
    labels = [row["label"] for row in rows]
    majority = max(labels.count(label) for label in set(labels)) / len(labels)
    assert results["test"]["accuracy"] > majority + 0.2


def test_reloaded_model_reproduces_the_evaluation(default_run):
    rows = [json.loads(line) for line in (default_run / "test_predictions.jsonl").read_text().splitlines()]
    predicted = tunewright.load_run(default_run).predict([row["text"] for row in rows])
    assert [p["label"] for p in predicted] == [row["prediction"]["label"] for row in rows]
    for fresh, saved in zip(predicted, rows):
        for name, probability in saved["prediction"]["probabilities"].items():
            assert fresh["probabilities"][name] == pytest.approx(probability, abs=1e-6)


def test_predict_command_prints_labels_with_probabilities(default_run, capsys):
    assert main(["predict", f"run={default_run}", "Works great, love it.", "Terrible, broke in a day."]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["label"] for line in lines] == ["positive", "negative"]
    for line in lines:
        assert sum(line["probabilities"].values()) == pytest.approx(1.0)


def test_a_validation_split_too_small_for_any_label_trains_without_one(tiny_bert, tmp_path):
    # 60 rows, 0.01 of each label rounds to none: the split exists and is empty.
    overrides = tiny_run_overrides(tiny_bert, tmp_path, "data.validation_fraction=0.01", "paths.run_id=no-val")
    callers_argv = list(sys.argv)
    assert main(["train", *overrides]) == 0
    assert sys.argv == callers_argv  # Hydra's command line is not left behind for the caller
    results = json.loads((tmp_path / "no-val" / "results.json").read_text())
    assert results["data"]["validation"] == 0 and results["data"]["train"] > 0
    assert "accuracy" in results["test"]


def test_predict_without_a_run_folder_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(RunFolderError, match="no config.yaml"):
        tunewright.load_run(tmp_path)


def test_sweep_runs_every_method(tiny_bert, tmp_path, capsys):
    code = main(["train", "-m", "method=lora,full", *tiny_run_overrides(tiny_bert, tmp_path)])
    assert code == 0
    configs = sorted((p / "config.yaml").read_text() for p in tmp_path.iterdir() if (p / "results.json").is_file())
    assert len(configs) == 2
    assert any("kind: full" in c for c in configs) and any("kind: lora" in c for c in configs)
    full_model = next(p for p in tmp_path.iterdir() if "-full-" in p.name) / "model"
    assert (full_model / "model.safetensors").is_file()


def test_gradient_checkpointing_changes_memory_not_the_result(tiny_bert, tmp_path):
    from safetensors.torch import load_file

    adapters = []
    for flag in ("false", "true"):
        runs = tmp_path / flag
        assert main(["train", *tiny_run_overrides(tiny_bert, runs, f"trainer.gradient_checkpointing={flag}")]) == 0
        (folder,) = [p for p in runs.iterdir() if p.is_dir()]
        adapters.append(load_file(folder / "model" / "adapter_model.safetensors"))
    for name, tensor in adapters[0].items():
        assert torch.allclose(tensor, adapters[1][name], atol=1e-6), name
