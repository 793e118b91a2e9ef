"""Audio classification through the whole pipeline: audio folders and CSVs of recording
paths load with every bad file named and their durations in the data card; a run
trains, reloads and predicts from files; the drift reference describes recordings, and
a batch recorded on another line (quieter, more dead air, telephone rate) drifts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from audio_models import RECORDING_RATE, save_tiny_audio_model, tone, write_recordings
from conftest import write_csv
from omegaconf import OmegaConf

import tunewright
from tunewright.cli import main
from tunewright.errors import DataError
from tunewright.governance.monitors.descriptors import audio_descriptors
from tunewright.plugins.datasets.audio_folder import AudioFolder, AudioFolderConfig
from tunewright.plugins.datasets.files import FileDataConfig, _csv

LABELS = ["high", "low"]


@pytest.fixture(scope="module")
def calls(tmp_path_factory) -> Path:
    """48 recordings in one folder per label: low and high tones under noise."""
    root = tmp_path_factory.mktemp("calls")
    for path, label in write_recordings(root / "pool", 48, ["low", "high"]):
        (root / label).mkdir(exist_ok=True)
        path.rename(root / label / path.name)
    (root / "pool").rmdir()
    return root


@pytest.fixture(scope="module")
def audio_model(tmp_path_factory) -> Path:
    return save_tiny_audio_model(tmp_path_factory.mktemp("wav2vec2"))


def load_folder(path: Path):
    return AudioFolder(OmegaConf.structured(AudioFolderConfig(kind="audio_folder", path=str(path)))).load()


def test_audio_folder_loads_labels_durations_and_a_content_hash(calls):
    data = load_folder(calls)
    assert data.label_names == LABELS
    assert sum(len(rows) for rows in data.splits.values()) == 48
    example = data.splits["train"][0]
    assert Path(example["audio"]).is_file() and LABELS[example["label"]] == Path(example["audio"]).parent.name
    assert example["seconds"] == pytest.approx(soundfile.info(example["audio"]).duration, abs=1e-3)
    assert 0.3 <= example["seconds"] <= 0.6
    assert data.sources[0]["path"].endswith("(48 audio files)") and len(data.sources[0]["sha256"]) == 64


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda path: path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really"), r"broken\.wav is not a readable audio"),
        (lambda path: soundfile.write(path, np.zeros((0, 1), dtype=np.float32), 8000), r"broken\.wav holds no samples"),
        (
            lambda path: soundfile.write(path, np.zeros((800, 3), dtype=np.float32), 8000),
            r"broken\.wav has 3 channels; give mono or stereo",
        ),
    ],
    ids=["undecodable", "empty", "three-channels"],
)
def test_a_bad_recording_is_named_before_training(tmp_path, write, message):
    write_recordings(tmp_path / "calls" / "low", 3, ["low"])
    write_recordings(tmp_path / "calls" / "high", 3, ["high"])
    write(tmp_path / "calls" / "high" / "broken.wav")
    with pytest.raises(DataError, match=message):
        load_folder(tmp_path / "calls")


def test_csv_audio_paths_resolve_beside_the_file_and_a_missing_one_names_its_row(tmp_path):
    recordings = write_recordings(tmp_path / "wav", 10, LABELS)
    rows = [{"file": f"wav/{path.name}", "label": label} for path, label in recordings]
    config = OmegaConf.structured(
        FileDataConfig(kind="csv", path=str(write_csv(tmp_path / "calls.csv", rows)), audio_column="file")
    )
    data = _csv(config).load()
    assert all(Path(e["audio"]).is_file() and e["seconds"] > 0 for rows in data.splits.values() for e in rows)
    assert any(source["path"].endswith("(10 audio files)") for source in data.sources)
    rows[6]["file"] = "wav/missing.wav"
    write_csv(tmp_path / "calls.csv", rows)
    with pytest.raises(DataError, match=r"calls\.csv, row 8: no audio file .*missing\.wav"):
        _csv(config).load()


def test_audio_descriptors_measure_what_they_name(tmp_path):
    rate = 16000
    t = np.arange(rate) / rate
    sine = 0.5 * np.sin(2 * np.pi * 1000 * t)
    half_silent = np.concatenate([sine[: rate // 2], np.zeros(rate // 2)])
    soundfile.write(tmp_path / "sine.wav", sine, rate, subtype="FLOAT")
    soundfile.write(tmp_path / "half.wav", half_silent, rate, subtype="FLOAT")
    soundfile.write(tmp_path / "stereo.wav", np.stack([sine, sine], axis=1)[: rate // 4], rate, subtype="FLOAT")
    values = audio_descriptors([str(tmp_path / name) for name in ("sine.wav", "half.wav", "stereo.wav")])
    np.testing.assert_allclose(values["seconds"], [1.0, 1.0, 0.25])
    np.testing.assert_allclose(values["sample_rate"], [rate] * 3)
    # a sine of amplitude A has RMS A/sqrt(2): 0.5 is -9.03 dBFS, half of it silent 3 dB less
    np.testing.assert_allclose(values["loudness_dbfs"], [-9.03, -12.04, -9.03], atol=0.02)
    np.testing.assert_allclose(values["silence_share"], [0.0, 0.5, 0.0], atol=0.03)
    np.testing.assert_allclose(values["spectral_centroid_hz"], [1000, 1000, 1000], rtol=0.01)


def train_overrides(model: Path, data: Path, runs: Path, *extra: str) -> list[str]:
    return [
        "model=audio_classification",
        f"model.name_or_path={model}",
        "data=audio_folder",
        f"data.path={data}",
        "method=lora",
        "trainer.max_epochs=3",
        "trainer.learning_rate=5e-3",
        "trainer.batch_size=8",
        "trainer.progress_bar=false",
        f"paths.runs_dir={runs}",
        "paths.run_id=r",
        *extra,
    ]


def test_audio_run_trains_reloads_predicts_and_monitors(calls, audio_model, tmp_path, capsys):
    assert main(["train", *train_overrides(audio_model, calls, tmp_path)]) == 0
    assert "predicts from recordings; skipping counterfactual" in capsys.readouterr().err
    run = tmp_path / "r"
    results = json.loads((run / "results.json").read_text())
    assert results["test"]["accuracy"] > 0.5, results["test"]
    rows = [json.loads(line) for line in (run / "test_predictions.jsonl").read_text().splitlines()]
    reloaded = tunewright.load_run(run).predict([row["audio"] for row in rows])
    expected = np.array([[row["prediction"]["probabilities"][label] for label in LABELS] for row in rows])
    got = np.array([[p["probabilities"][label] for label in LABELS] for p in reloaded])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert main(["predict", f"run={run}", rows[0]["audio"]]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["audio"] == rows[0]["audio"] and printed["label"] == rows[0]["prediction"]["label"]
    assert main(["predict", f"run={run}", str(tmp_path / "absent.wav")]) != 0
    assert "tunewright: predict input 1: no audio file" in capsys.readouterr().err

    card = (run / "MODEL_CARD.md").read_text()
    assert "pipeline_tag: audio-classification" in card and "held-out recordings" in card and "call.wav" in card
    data_card = (run / "data_card.md").read_text()
    assert "## Durations (seconds)" in data_card
    profile = json.loads((run / "reports" / "drift_reference" / "profile.json").read_text())
    assert profile["input_field"] == "audio"
    assert set(profile["descriptor_means"]) >= {"seconds", "loudness_dbfs", "silence_share", "spectral_centroid_hz"}

    rng = np.random.default_rng(9)
    verdicts = {}
    for name, rate, gain, dead_air in (("same", RECORDING_RATE, 1.0, 0.0), ("phone_line", 16000, 0.05, 1.0)):
        folder = tmp_path / name
        folder.mkdir()
        listed = []
        for i in range(40):
            wave = gain * tone(i % 2, rng.uniform(0.3, 0.6), rng, rate)
            wave = np.concatenate([wave, np.zeros(int(dead_air * rate), dtype=np.float32)])
            soundfile.write(folder / f"{i:03d}.wav", wave, rate)
            listed.append({"file": str(folder / f"{i:03d}.wav"), "label": ["low", "high"][i % 2]})
        batch = write_csv(folder / "batch.csv", listed)
        monitored = ["monitor", f"run={run}", "data=csv", f"data.path={batch}", "data.audio_column=file"]
        assert main([*monitored, f"monitor.name={name}"]) == 0
        report = json.loads((run / "reports" / f"drift-{name}.json").read_text())
        verdicts[name] = report["windows"][0]["layers"]["descriptors"]
    assert not verdicts["same"]["drifted"], verdicts["same"]
    drifted = set(verdicts["phone_line"]["drifted_columns"])
    assert {"sample_rate", "loudness_dbfs", "silence_share"} <= drifted, drifted
