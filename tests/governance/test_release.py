"""The model card, and export under the release decision."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import tiny_run_overrides
from edge_runtime import FP32_RUN

import tunewright
from tunewright import hookimpl
from tunewright.cli import main
from tunewright.errors import ReleaseBlockedError, TunewrightError
from tunewright.export import export_run
from tunewright.plugin_manager import get_plugins

TEXTS = ["Great sound, fits perfectly.", "Battery died in a day.", "It is fine, I guess."]


def train(tiny_bert, runs, run_id, *extra):
    assert main(["train", *tiny_run_overrides(tiny_bert, runs, f"paths.run_id={run_id}", *extra)]) == 0
    return runs / run_id


@pytest.fixture(scope="module")
def lora_run(tiny_bert, tmp_path_factory):
    return train(
        tiny_bert,
        tmp_path_factory.mktemp("runs"),
        "lora",
        "card.intended_use=Sorting product reviews by sentiment.",
        "card.license=apache-2.0",
        "card.tags=[reviews]",
        FP32_RUN,  # the merged export is compared with the run's predictor at fp32 tolerance
    )


def test_model_card_is_rendered_from_the_records(lora_run):
    text = (lora_run / "MODEL_CARD.md").read_text()
    _, header, body = text.split("---\n", 2)
    header = yaml.safe_load(header)
    results = json.loads((lora_run / "results.json").read_text())
    assert header["library_name"] == "peft" and header["license"] == "apache-2.0"
    assert header["tags"] == ["tunewright", "lora", "ecommerce_reviews", "reviews"]
    metrics = header["model-index"][0]["results"][0]["metrics"]
    assert metrics[0] == {"type": "accuracy", "value": round(results["test"]["accuracy"], 4)}
    for heading in (
        "Model details",
        "Intended use",
        "Out-of-scope use",
        "Training data",
        "Evaluation results",
        "Bias audit",
        "Drift baseline and monitoring",
        "Training details",
        "Limitations",
    ):
        assert f"## {heading}\n" in body, heading
    assert "Sorting product reviews by sentiment." in body
    assert f"{results['train']['trainable_parameters']:,} of {results['train']['total_parameters']:,}" in body
    bias = json.loads((lora_run / "reports" / "bias.json").read_text())
    assert f"### counterfactual: {bias['audits']['counterfactual']['verdict']}" in body
    assert bias["context"]["intended_use"] == "Sorting product reviews by sentiment."


def test_manifest_records_the_working_directory_revision_and_libraries(lora_run):
    import subprocess

    manifest = json.loads((lora_run / "manifest.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    expected = head.stdout.strip() if head.returncode == 0 else None
    assert (manifest["git"] or {}).get("commit") == expected
    assert {"torch", "transformers", "peft", "evidently", "wandb", "fairlearn"} <= set(manifest["libraries"])


def test_card_command_rerenders_after_the_records_change(lora_run, capsys):
    results_path = lora_run / "results.json"
    results = json.loads(results_path.read_text())
    original = results["test"]["accuracy"]
    results["test"]["accuracy"] = 0.123456
    results_path.write_text(json.dumps(results))
    try:
        assert main(["card", f"run={lora_run}"]) == 0
        assert "| accuracy | 0.1235 |" in (lora_run / "MODEL_CARD.md").read_text()
    finally:
        results["test"]["accuracy"] = original
        results_path.write_text(json.dumps(results))


def test_merged_export_is_a_plain_model_with_the_same_logits(lora_run, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = export_run(lora_run, tmp_path / "merged", merged=True)
    assert (out / "README.md").read_text() == (lora_run / "MODEL_CARD.md").read_text()
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    predictor = tunewright.load_run(lora_run)
    expected = predictor.outputs(TEXTS)[0]
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        logits = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    (record,) = [e for e in json.loads((lora_run / "manifest.json").read_text())["exports"] if e["path"] == str(out)]
    assert record["merged"] and record["override"] is None and record["release"]["allowed"]


def test_adapter_export_loads_with_peft(lora_run, tmp_path):
    out = export_run(lora_run, tmp_path / "adapter")
    assert (out / "adapter_model.safetensors").is_file() and (out / "README.md").is_file()


class Blocker:
    @hookimpl(tryfirst=True)
    def tunewright_release_decision(self, run, results):
        return {"allowed": False, "policy": "house", "reasons": ["house rule: no release on Mondays"]}


def test_a_blocked_run_is_not_exported_unless_overridden(tiny_bert, tmp_path, capsys):
    plugins = get_plugins()
    plugins.manager.register(Blocker(), name="blocker")
    try:
        run = train(tiny_bert, tmp_path, "blocked")
    finally:
        plugins.manager.unregister(name="blocker")
    assert "release BLOCKED" in capsys.readouterr().out
    assert main(["export", f"run={run}"]) == 1
    assert (
        "release blocked: house rule: no release on Mondays. See reports/bias.html; to export"
        in capsys.readouterr().err
    )
    assert not (run / "export").exists() and "exports" not in json.loads((run / "manifest.json").read_text())

    assert main(["export", f"run={run}", "override=approved by the review board, ticket 42"]) == 0
    assert "WARNING: exporting despite the release decision" in capsys.readouterr().err
    (record,) = json.loads((run / "manifest.json").read_text())["exports"]
    assert record["override"]["reason"] == "approved by the review board, ticket 42"
    assert record["release"]["allowed"] is False and (run / "export" / "README.md").is_file()


def test_without_a_release_decision_release_is_not_cleared_and_export_says_why(tiny_bert, tmp_path):
    plugins = get_plugins()
    builtin = plugins.manager.unregister(name="tunewright.governance.release")
    try:
        run = train(tiny_bert, tmp_path, "undecided")
    finally:
        plugins.manager.register(builtin, name="tunewright.governance.release")
    bias = json.loads((run / "reports" / "bias.json").read_text())
    assert bias["release"]["allowed"] is False
    with pytest.raises(
        ReleaseBlockedError, match="no release decision: no plugin answered tunewright_release_decision"
    ):
        export_run(run)
    html = (run / "reports" / "bias.html").read_text()
    assert "Model " + str(tiny_bert) in html


def test_reports_name_the_embedded_model_by_its_hub_id():
    from tunewright.governance.bias_report import render_html

    record = {
        "run_id": "r",
        "model": {"name_or_path": "embedded:all-MiniLM-L6-v2"},
        "method": "lora",
        "data": "d",
        "policy": {"name": "default", "blocking": True},
        "audits": {},
        "release": {"allowed": True, "reasons": []},
    }
    assert "Model sentence-transformers/all-MiniLM-L6-v2, method lora" in render_html(record)


def test_an_unaudited_run_needs_an_override_and_unmergeable_methods_say_so(tiny_bert, tmp_path, monkeypatch):
    run = train(tiny_bert, tmp_path, "unaudited", "audit=none")
    with pytest.raises(ReleaseBlockedError, match=r"no bias audit ran \(audit=none\)"):
        export_run(run)
    assert "No bias audit ran" in (run / "MODEL_CARD.md").read_text()

    import tunewright.export as export_module

    real = export_module.load_model

    def without_merge(folder, **options):
        result = real(folder, **options)
        result.method.can_merge = False  # as prompt tuning, adapters and QLoRA declare
        return result

    monkeypatch.setattr(export_module, "load_model", without_merge)
    with pytest.raises(TunewrightError, match="cannot be merged into plain weights"):
        export_run(run, merged=True, override="testing")
