"""Generative tasks through ``tunewright train``: a tiny GPT-2 (causal LM) and a tiny T5
(seq2seq), trained, evaluated by generation, reloaded."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

import tunewright
from tunewright.cli import main


def test_sft_on_a_labelled_dataset_answers_with_label_names(tiny_gpt2, tmp_path, capsys):
    overrides = [
        "experiment=sft",
        f"model.name_or_path={tiny_gpt2}",
        "model.max_length=48",
        "model.max_new_tokens=4",
        "data.limit=60",
        "trainer.max_epochs=2",
        "trainer.learning_rate=5e-3",
        "trainer.progress_bar=false",
        f"paths.runs_dir={tmp_path}",
        "paths.run_id=sft",
    ]
    assert main(["train", *overrides]) == 0
    run = tmp_path / "sft"
    results = json.loads((run / "results.json").read_text())
    assert set(results["test"]) == {"loss", "perplexity", "token_accuracy", "exact_match", "rouge_l", "chrf"}
    assert results["test"]["perplexity"] == pytest.approx(2.718281828 ** results["test"]["loss"], rel=1e-6)
    assert "test exact match:" in capsys.readouterr().out

    rows = [json.loads(line) for line in (run / "test_predictions.jsonl").read_text().splitlines()]
    assert rows and all(row["response"] in ("negative", "positive") and "response" in row["prediction"] for row in rows)
    exact = sum(r["prediction"]["response"].lower() == r["response"] for r in rows) / len(rows)
    assert results["test"]["exact_match"] == pytest.approx(exact)

    answers = tunewright.load_run(run).predict([row["text"] for row in rows[:3]])
    assert [a["response"] for a in answers] == [r["prediction"]["response"] for r in rows[:3]]
    card = (run / "MODEL_CARD.md").read_text()
    assert "pipeline_tag: text-generation" in card and not (run / "reports" / "bias.json").exists()

    capsys.readouterr()
    assert main(["export", f"run={run}", "merged=true", f"out={tmp_path / 'merged'}", "override=an SFT test"]) == 0
    assert f"to serve it at scale: vllm serve {tmp_path / 'merged'}" in capsys.readouterr().out
    assert main(["export", f"run={run}", f"out={tmp_path / 'adapter'}", "override=an SFT test"]) == 0
    command = f"vllm serve {tiny_gpt2} --enable-lora --lora-modules sft={tmp_path / 'adapter'}"
    assert command in capsys.readouterr().out


def test_instruction_data_from_a_file_with_a_response_column(tiny_gpt2, tmp_path):
    path = tmp_path / "faq.jsonl"
    pairs = [(f"How do I reset device {i}?", f"Hold the button for {i % 5 + 3} seconds.") for i in range(40)]
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in pairs))
    overrides = [
        "experiment=sft",
        f"model.name_or_path={tiny_gpt2}",
        "model.max_length=48",
        "model.generate_test_examples=2",
        "data=jsonl",
        f"data.path={path}",
        "data.text_column=question",
        "data.response_column=answer",
        "data.label_column=null",
        "trainer.max_epochs=1",
        "trainer.progress_bar=false",
        f"paths.runs_dir={tmp_path}",
        "paths.run_id=faq",
    ]
    assert main(["train", *overrides]) == 0
    rows = [json.loads(line) for line in (tmp_path / "faq" / "test_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["response"].startswith("Hold the button")


def test_chat_messages_train_on_the_last_answer_and_bad_conversations_fail_clearly(tiny_gpt2, tmp_path):
    from tunewright.errors import DataError

    def conversation(i):
        return [
            {"role": "system", "content": "You answer support questions."},
            {"role": "user", "content": f"My order {i} is late."},
            {"role": "assistant", "content": f"Order {i} ships tomorrow."},
        ]

    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps({"messages": conversation(i)}) + "\n" for i in range(40)))
    overrides = [
        "experiment=sft",
        f"model.name_or_path={tiny_gpt2}",
        "model.max_length=64",
        "model.generate_test_examples=2",
        "data=jsonl",
        f"data.path={path}",
        "data.messages_column=messages",
        "data.label_column=null",
        "trainer.max_epochs=1",
        "trainer.progress_bar=false",
        f"paths.runs_dir={tmp_path}",
        "paths.run_id=chat",
    ]
    assert main(["train", *overrides]) == 0
    rows = [json.loads(line) for line in (tmp_path / "chat" / "test_predictions.jsonl").read_text().splitlines()]
    assert rows[0]["response"].endswith("ships tomorrow.") and rows[0]["text"].startswith("system: You answer")

    from tunewright.plugins.datasets.files import FileDataConfig, _jsonl

    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"messages": conversation(0)[:2]}) + "\n")
    config = OmegaConf.structured(
        FileDataConfig(kind="jsonl", path=str(broken), messages_column="messages", label_column=None)
    )
    with pytest.raises(DataError, match=r"broken.jsonl, row 1: the last message must be the assistant's answer"):
        _jsonl(config).load()


def test_chrf_matches_sacrebleu():
    """Values sacreBLEU 2 gives (corpus_chrf and sentence_chrf, default settings, /100)."""
    from tunewright.plugins.models.text_metrics import chrf

    assert chrf(["the cat sat on the mat", "hello there"], ["the cat is on the mat", "hello world"]) == pytest.approx(
        0.5291454885
    )
    assert chrf(["the cat sat on the mat"], ["the cat is on the mat"]) == pytest.approx(0.6457794206)
    assert chrf(["identical"], ["identical"]) == pytest.approx(1.0) and chrf(["abc"], ["xyz"]) == 0.0


def test_rouge_l_is_the_longest_common_subsequence_f1():
    from tunewright.plugins.models.text_metrics import rouge_l

    assert rouge_l("the cat sat on the mat", "the cat sat on the mat") == 1.0
    assert rouge_l("the cat was on the mat", "the cat sat on the mat") == pytest.approx(5 / 6)  # LCS 5 of 6 each way
    assert rouge_l("police killed the gunman", "the gunman killed police") == pytest.approx(
        0.5
    )  # LCS "the gunman" or "killed police"
    assert rouge_l("", "") == 1.0 and rouge_l("a", "") == 0.0 and rouge_l("x y", "z") == 0.0


def test_seq2seq_summarises_with_an_encoder_decoder(tmp_path):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, T5Config

    from tunewright.embedded import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("embedded:all-MiniLM-L6-v2"), eos_token="[SEP]")
    model_dir = tmp_path / "tiny-t5"
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=tokenizer.vocab_size,
        d_model=32,
        d_kv=16,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    AutoModelForSeq2SeqLM.from_config(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    path = tmp_path / "notes.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "note": f"The customer called about order {i}; it arrived damaged and they want a refund.",
                    "summary": f"refund for damaged order {i}",
                }
            )
            + "\n"
            for i in range(40)
        )
    )
    overrides = [
        "experiment=sft",
        "model=seq2seq_lm",
        f"model.name_or_path={model_dir}",
        "model.max_length=48",
        "model.prompt_template='summarize: {prompt}'",
        "model.generate_test_examples=3",
        "data=jsonl",
        f"data.path={path}",
        "data.text_column=note",
        "data.response_column=summary",
        "data.label_column=null",
        "method=lora",
        "trainer.max_epochs=1",
        "trainer.progress_bar=false",
        f"paths.runs_dir={tmp_path}",
        "paths.run_id=notes",
    ]
    assert main(["train", *overrides]) == 0
    run = tmp_path / "notes"
    results = json.loads((run / "results.json").read_text())
    assert {"loss", "perplexity", "token_accuracy", "exact_match", "rouge_l", "chrf"} == set(results["test"])
    rows = [json.loads(line) for line in (run / "test_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(isinstance(row["prediction"]["response"], str) for row in rows)
    answers = tunewright.load_run(run).predict([row["text"] for row in rows])
    assert [a["response"] for a in answers] == [r["prediction"]["response"] for r in rows]
    assert "pipeline_tag: text2text-generation" in (run / "MODEL_CARD.md").read_text()
    assert (run / "reports" / "drift_reference" / "profile.json").is_file()  # the encoder states of the prompts


def test_sft_run_records_prompt_drift_reference_and_monitors_prompts(tiny_gpt2, tmp_path):
    """A language model gives no class probabilities, so its drift reference holds the
    prompts' descriptors and mean hidden states; a batch of very different prompts
    drifts on the descriptors, and the prediction layers say they do not apply."""
    overrides = [
        "experiment=sft",
        f"model.name_or_path={tiny_gpt2}",
        "model.max_length=48",
        "model.generate_test_examples=0",
        "data.limit=60",
        "trainer.max_epochs=1",
        "trainer.progress_bar=false",
        f"paths.runs_dir={tmp_path}",
        "paths.run_id=sft",
    ]
    assert main(["train", *overrides]) == 0
    run = tmp_path / "sft"
    profile = json.loads((run / "reports" / "drift_reference" / "profile.json").read_text())
    assert profile["mean_confidence"] is None and profile["prediction_distribution"] is None and profile["rows"] > 0
    batch = tmp_path / "tickets.jsonl"
    batch.write_text(
        "".join(
            json.dumps({"text": f"ORDER #{1000 + i} REF-{i * 7919} STATUS=PENDING, ETA 2026-12-{i % 28 + 1:02d}"})
            + "\n"
            for i in range(40)
        )
    )
    assert main(["monitor", f"run={run}", "data=jsonl", f"data.path={batch}", "data.label_column=null"]) == 0
    report = json.loads((run / "reports" / "drift-tickets.json").read_text())
    layers = report["windows"][0]["layers"]
    assert layers["descriptors"]["drifted"] and "non_letter_share" in layers["descriptors"]["drifted_columns"]
    assert layers["predictions"]["available"] is False and layers["performance"]["available"] is False
    assert report["drift_detected"] and not report["retrain_recommended"]


def test_a_streamed_answer_joins_to_the_answer_and_never_sends_half_a_character():
    """Byte-level tokens split an emoji or an accented letter; the stream holds such a
    piece (and whitespace at either end) until it is settled."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    from tunewright.plugins.models.text_generation import AnswerStream

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(["plain words only, nothing else"] * 20, vocab_size=300, min_frequency=1)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=trainer._tokenizer)
    answer = "  Ça marche 😀 très bien\n  "
    ids = tokenizer.encode(answer)
    assert any("\ufffd" in tokenizer.decode(ids[:n]) for n in range(1, len(ids)))  # some prefix cuts a character
    pieces: list[str] = []
    stream = AnswerStream(tokenizer, pieces.append)
    stream.put(torch.tensor([[5, 6, 7]]))  # the prompt: never sent
    for token in ids:
        stream.put(torch.tensor([token]))
    stream.end()
    assert "".join(pieces) == tokenizer.decode(ids).strip() == answer.strip()
    assert len(pieces) > 3 and not any("\ufffd" in piece for piece in pieces)
