"""``trainer.precision``: what ``auto`` picks on a CPU with and without native bf16, what
the run records, and that a reloaded run predicts in the precision it was evaluated in."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_run_overrides

import tunewright
from tunewright import precision
from tunewright.cli import main
from tunewright.errors import ConfigError
from tunewright.precision import choose_precision, native_bf16_flags

CPU = torch.device("cpu")
X86_FLAGS = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\n"


def fake_cpu(tmp_path, monkeypatch, text: str):
    cpu_info = tmp_path / "cpuinfo"
    cpu_info.write_text(text)
    monkeypatch.setattr(precision, "CPU_INFO", cpu_info)


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    (tmp_path / "x86").write_text(X86_FLAGS * 2)
    (tmp_path / "arm").write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n")
    (tmp_path / "avx2").write_text("flags\t\t: fpu sse2 avx2 fma\nmodel name\t: bf16 in a name is not a flag\n")
    assert native_bf16_flags(tmp_path / "x86") == ["avx512_bf16"]
    assert native_bf16_flags(tmp_path / "arm") == ["bf16"]
    assert native_bf16_flags(tmp_path / "avx2") == []
    assert native_bf16_flags(tmp_path / "absent") == []


def test_auto_is_bf16_on_a_cpu_with_native_bf16_and_fp32_without(tmp_path, monkeypatch):
    fake_cpu(tmp_path, monkeypatch, X86_FLAGS)
    native = choose_precision("auto", CPU)
    assert (native.name, native.dtype, native.device) == ("bf16", torch.bfloat16, "cpu")
    assert native.reason == "auto: this CPU computes bf16 natively (avx512_bf16)"
    fake_cpu(tmp_path, monkeypatch, "flags\t\t: fpu avx2\n")
    emulated = choose_precision("auto", CPU)
    assert (emulated.name, emulated.dtype) == ("fp32", None)
    assert "no native bf16" in emulated.reason


def test_a_configured_precision_is_kept_and_says_so(tmp_path, monkeypatch):
    fake_cpu(tmp_path, monkeypatch, "flags\t\t: fpu avx2\n")
    chosen = choose_precision("bf16", CPU)
    assert (chosen.dtype, chosen.reason) == (torch.bfloat16, "configured: trainer.precision=bf16")
    assert choose_precision("fp32", CPU).dtype is None
    with pytest.raises(ConfigError, match="trainer.precision: 'half' is not one of auto, fp32, bf16, fp16"):
        choose_precision("half", CPU)
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        choose_precision("fp16", CPU)


def test_a_run_records_its_precision_and_predicts_in_it_on_another_cpu(tiny_bert, tmp_path, monkeypatch):
    """Trained where ``auto`` meant bf16, the run keeps predicting in bf16 where ``auto``
    would mean fp32, so its predictions are the ones its evaluation and audits saw."""
    fake_cpu(tmp_path, monkeypatch, X86_FLAGS)
    runs = tmp_path / "runs"
    assert main(["train", *tiny_run_overrides(tiny_bert, runs)]) == 0
    (folder,) = runs.iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["precision"] == {
        "name": "bf16",
        "device": "cpu",
        "reason": "auto: this CPU computes bf16 natively (avx512_bf16)",
    }
    assert (
        "| precision that ran | bf16 (auto: this CPU computes bf16 natively (avx512\\_bf16)) |"
        in (folder / "MODEL_CARD.md").read_text()
    )

    fake_cpu(tmp_path, monkeypatch, "flags\t\t: fpu avx2\n")
    predictor = tunewright.load_run(folder)
    assert predictor.dtype == torch.bfloat16
    rows = [json.loads(line) for line in (folder / "test_predictions.jsonl").read_text().splitlines()]
    predicted = predictor.predict([row["text"] for row in rows])
    for fresh, saved in zip(predicted, rows):
        for name, probability in saved["prediction"]["probabilities"].items():
            assert fresh["probabilities"][name] == pytest.approx(probability, abs=1e-6)
