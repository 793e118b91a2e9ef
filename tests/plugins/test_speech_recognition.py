"""Speech recognition by CTC and by Whisper: error rates as a reference implementation
computes them, the CTC loss and frame counts as transformers computes them, Whisper's
cached greedy decoding as an uncached one, transcripts outside the vocabulary named by
row, and runs that train on a CSV of recordings and transcripts, reload, predict from
files and record a drift reference."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from audio_models import WORDS, save_tiny_ctc_model, save_tiny_whisper, write_recordings
from conftest import write_csv
from omegaconf import OmegaConf

import tunewright
from tunewright.cli import main
from tunewright.errors import ConfigError, DataError
from tunewright.plugin_manager import get_plugins
from tunewright.plugins.models.text_metrics import character_error_rate, word_error_rate


@pytest.fixture(scope="module")
def ctc_model(tmp_path_factory) -> Path:
    return save_tiny_ctc_model(tmp_path_factory.mktemp("wav2vec2-ctc"))


@pytest.fixture(scope="module")
def whisper(tmp_path_factory) -> Path:
    return save_tiny_whisper(tmp_path_factory.mktemp("whisper"))


def calls_csv(directory: Path, count: int) -> Path:
    """Recordings whose pitch is the spoken word, with lower-case transcripts."""
    recordings = write_recordings(directory / "wav", count, list(WORDS))
    rows = [{"file": f"wav/{path.name}", "transcript": f"{word.lower()} {word.lower()}"} for path, word in recordings]
    return write_csv(directory / "calls.csv", rows)


def transcriber(model: Path, **options):
    plugins = get_plugins()
    schema = plugins.registries["models"].get("speech_recognition").schema
    return plugins.registries["models"].build(
        OmegaConf.structured(schema(kind="speech_recognition", name_or_path=str(model), **options))
    )


def test_error_rates_match_jiwer():
    """Values jiwer 4.0 gives (``jiwer.wer`` / ``jiwer.cer`` with reference first)."""
    hypotheses, references = ["the cat sat on mat", "hello there world"], ["the cat sat on the mat", "hello world"]
    assert word_error_rate(hypotheses, references) == pytest.approx(0.25)
    assert character_error_rate(hypotheses, references) == pytest.approx(0.30303030303)
    assert character_error_rate(["kitten"], ["sitting"]) == pytest.approx(0.428571428571)
    assert word_error_rate(["a b c d e f"], ["x"]) == pytest.approx(6.0)  # insertions can pass 1
    assert character_error_rate(["a b c d e f"], ["x"]) == pytest.approx(11.0)
    pair = (["good morning", "thanks"], ["Good morning", "thank you"])  # case counts
    assert word_error_rate(*pair) == pytest.approx(0.75) and character_error_rate(*pair) == pytest.approx(0.238095238)
    assert character_error_rate(["hello  there world"], ["hello world"]) == character_error_rate(
        ["hello there world"], ["hello world"]
    )  # a run of spaces is one
    assert word_error_rate(["same words"], ["same words"]) == 0.0 and word_error_rate([""], [""]) == 0.0


def test_ctc_loss_and_frames_are_what_transformers_computes(ctc_model, tmp_path):
    task = transcriber(ctc_model, transcript_case="upper")
    recordings = write_recordings(tmp_path, 4, list(WORDS))
    features = task.encode(task.prepare([{"audio": str(p), "response": w.lower()} for p, w in recordings], []))
    assert features[0]["transcript"] == "LOW" and task.tokenizer.decode(features[1]["labels"]) == "HIGH"
    batch = task.collate(features)
    model = task.load_pretrained([])
    model.config.ctc_loss_reduction = "sum"
    output = model(**batch)  # transformers' own CTC loss, from the labels
    lengths = model._get_feat_extract_output_lengths(batch["attention_mask"].sum(-1))
    assert len(set(lengths.tolist())) > 1  # clips of different lengths: the padding matters
    assert torch.equal(task.frame_counts(output.logits, batch), lengths)
    torch.testing.assert_close(task.loss_sum(output.logits, batch), output.loss)
    assert task.loss_count(batch) == sum(len(w) for _, w in recordings)


def test_whisper_learns_after_its_prefix_and_decodes_greedily_with_its_cache(whisper, tmp_path):
    task = transcriber(whisper, max_length=12)
    assert type(task).__name__ == "Seq2SeqTranscriber"
    prefix = [
        task.tokenizer.convert_tokens_to_ids(t)
        for t in ("<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>")
    ]
    assert task.prefix == prefix
    recordings = write_recordings(tmp_path, 3, list(WORDS))
    features = task.encode(task.prepare([{"audio": str(p), "response": w} for p, w in recordings], []))
    low = task.tokenizer("LOW", add_special_tokens=False).input_ids
    assert features[0]["decoder_input_ids"] == prefix + low
    assert features[0]["labels"] == [-100] * 3 + low + [task.tokenizer.eos_token_id]  # the prefix is not learnt
    model = task.load_pretrained([])
    batch = task.extracted(features)
    with torch.no_grad():
        cached = task.greedy(model, batch)
        tokens = torch.tensor([prefix] * 3)  # the same decoding, the whole sequence every step
        for _ in range(12 - len(prefix)):
            step = model(**batch, decoder_input_ids=tokens).logits[:, -1].argmax(-1)
            tokens = torch.cat([tokens, step[:, None]], dim=1)
    uncached = task.tokenizer.batch_decode(tokens[:, len(prefix) :].tolist(), skip_special_tokens=True)
    assert cached == [" ".join(text.split()) for text in uncached]


def test_whisper_is_told_its_language_and_refuses_one_it_cannot_write(whisper):
    german = transcriber(whisper, language="german")
    assert german.tokenizer.convert_ids_to_tokens(german.prefix)[1] == "<|de|>"
    with pytest.raises(ConfigError, match=r"model\.language='fr': the checkpoint's tokenizer has no token for it"):
        transcriber(whisper, language="fr").encode([{"audio": "x.wav", "response": "hallo"}])
    with pytest.raises(ConfigError, match=r"model\.language='klingon': not a language Whisper knows"):
        transcriber(whisper, language="klingon").encode([{"audio": "x.wav", "response": "hallo"}])


def test_transcripts_the_vocabulary_cannot_spell_are_named_by_row(ctc_model, tmp_path, capsys):
    data = calls_csv(tmp_path, 6)
    overrides = [
        "train",
        "experiment=asr",
        f"model.name_or_path={ctc_model}",
        "model.transcript_case=as_is",
        "data=csv",
        f"data.path={data}",
        "data.audio_column=file",
        "data.response_column=transcript",
        "data.label_column=null",
        f"paths.runs_dir={tmp_path / 'runs'}",
    ]
    task = transcriber(ctc_model)
    with pytest.raises(
        DataError, match=r"calls\.csv, row 2: the transcript has characters .* 'l' 'o' 'w'.*transcript_case"
    ):
        task.encode([{"audio": "x.wav", "response": "low low", "origin": {"source": str(data), "row": 2}}])
    with pytest.raises(DataError, match=r"x\.wav: no transcript"):
        task.prepare([{"audio": "x.wav", "response": " "}], [])
    with pytest.raises(SystemExit) as stopped:  # Hydra's job exits with the status
        main(overrides)
    assert stopped.value.code == 1
    assert re.search(r"tunewright: .*calls\.csv, row \d+: the transcript has characters", capsys.readouterr().err)
    assert not any((tmp_path / "runs").glob("*/model"))


# A random tiny Whisper's output projection is its decoder embedding, near zero and tied:
# its logits move only when that embedding trains, which LoRA leaves frozen, so its run is
# full fine-tuning (the conformance table covers LoRA on it).
@pytest.mark.parametrize("architecture, method", [("wav2vec2", "lora"), ("whisper", "full")])
def test_speech_recognition_trains_reloads_predicts_and_monitors(
    ctc_model, whisper, tmp_path, capsys, architecture, method
):
    checkpoint, case = (ctc_model, "upper") if architecture == "wav2vec2" else (whisper, "as_is")
    data = calls_csv(tmp_path, 24)
    overrides = [
        "experiment=asr",
        f"model.name_or_path={checkpoint}",
        f"model.transcript_case={case}",
        "model.max_length=16",
        "data=csv",
        f"data.path={data}",
        "data.audio_column=file",
        "data.response_column=transcript",
        "data.label_column=null",
        f"method={method}",
        "trainer.max_epochs=8",
        "trainer.learning_rate=1e-2",
        "trainer.batch_size=8",
        "trainer.progress_bar=false",
        "trainer.precision=fp32",  # as predict computes (it does not autocast)
        "trainer.early_stopping_metric=loss",  # a random tiny model's WER stays 1 for many epochs
        f"paths.runs_dir={tmp_path}",
        "paths.run_id=asr",
    ]
    assert main(["train", *overrides]) == 0
    run = tmp_path / "asr"
    results = json.loads((run / "results.json").read_text())
    assert set(results["test"]) == {"loss", "wer", "cer"}, results["test"]
    rows = [json.loads(line) for line in (run / "test_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == results["data"]["test"] and all(isinstance(r["prediction"]["transcript"], str) for r in rows)
    transcripts = [r["prediction"]["transcript"] for r in rows]
    references = [r["response"].upper() if case == "upper" else r["response"] for r in rows]
    assert results["test"]["wer"] == pytest.approx(word_error_rate(transcripts, references))
    assert results["test"]["cer"] == pytest.approx(character_error_rate(transcripts, references))
    base = transcriber(checkpoint, transcript_case=case, max_length=16)
    untrained, _ = base.evaluate(base.load_pretrained([]), base.encode(rows), 8, torch.device("cpu"))
    assert results["test"]["loss"] < untrained["loss"] / 2, (results["test"], untrained)

    reloaded = tunewright.load_run(run).predict([r["audio"] for r in rows])
    assert [p["transcript"] for p in reloaded] == transcripts
    assert main(["predict", f"run={run}", rows[0]["audio"]]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == {"audio": rows[0]["audio"], "transcript": transcripts[0]}

    assert "pipeline_tag: automatic-speech-recognition" in (run / "MODEL_CARD.md").read_text()
    profile = json.loads((run / "reports" / "drift_reference" / "profile.json").read_text())
    assert profile["input_field"] == "audio" and "silence_share" in profile["descriptor_means"]
