"""Vision-language SFT on a tiny random LLaVA: the image's tokens counted and checked,
the loss only on the answer, the vision tower never adapted or trained, and a run that
trains on a CSV of images and questions, reloads, answers ``predict image=...`` and
records a drift reference of its images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import write_csv
from omegaconf import OmegaConf
from vision_language_models import IMAGE_TOKEN, save_tiny_llava, write_image_questions

import tunewright
from tunewright.cli import main
from tunewright.errors import ConfigError, DataError
from tunewright.plugin_manager import get_plugins
from tunewright.plugins.models.text_task import IGNORE


@pytest.fixture(scope="module")
def llava(tmp_path_factory) -> Path:
    return save_tiny_llava(tmp_path_factory.mktemp("llava"))


def build(kind: str, group: str, **options):
    registry = get_plugins().registries[group]
    return registry.build(OmegaConf.structured(registry.get(kind).schema(kind=kind, **options)))


def assistant(model: Path, **options):
    return build("vision_language", "models", name_or_path=str(model), **{"max_length": 64, **options})


def test_the_image_becomes_its_tokens_and_only_the_answer_is_learnt(llava, tmp_path):
    task = assistant(llava)
    row = write_image_questions(tmp_path, 1)[0]
    feature = task.encode([{"image": str(tmp_path / row["file"]), "text": row["question"], "response": "red"}])[0]
    image = task.processor.image_token_id
    assert feature["input_ids"].count(image) == 16  # 16x16 pixels in 4-pixel patches
    answer = task.tokenizer("red", add_special_tokens=False).input_ids + [task.tokenizer.eos_token_id]
    prompt = len(feature["input_ids"]) - len(answer)
    assert feature["labels"] == [IGNORE] * prompt + answer
    batch = task.collate([feature])
    assert batch["pixel_values"].shape == (1, 3, 16, 16)
    with pytest.raises(DataError, match=r"an example has no image: 'which colour"):
        task.encode([{"text": "which colour?", "response": "red"}])
    with pytest.raises(DataError, match=r"holds 2 image tokens, not 1"):
        task.encode([{"image": str(tmp_path / row["file"]), "text": f"{IMAGE_TOKEN} twice?", "response": "red"}])


def test_a_processor_that_miscounts_the_image_tokens_is_refused(llava, tmp_path):
    import shutil

    copy = tmp_path / "llava"
    shutil.copytree(llava, copy)
    settings = json.loads((copy / "processor_config.json").read_text())
    settings["patch_size"] = 8
    (copy / "processor_config.json").write_text(json.dumps(settings))
    with pytest.raises(ConfigError, match=r"processor writes 4 image tokens per image but the vision tower gives 16"):
        assistant(copy).encode([{"image": "x.png", "text": "which colour?"}])


@pytest.mark.parametrize("projector", [False, True])
def test_the_vision_tower_is_never_adapted_or_trained(llava, projector):
    task = assistant(llava, train_projector=projector)
    lora = build("lora", "methods").apply(task.load_pretrained([]), task)
    task.keep_frozen(lora)
    adapted = {name.split(".lora_")[0] for name, _ in lora.named_parameters() if ".lora_" in name}
    assert adapted and all(".language_model." in name for name in adapted), sorted(adapted)[:3]
    full = build("full", "methods").apply(task.load_pretrained([]), task)
    task.keep_frozen(full)
    trains = {name for name, p in full.named_parameters() if p.requires_grad}
    assert not any(".vision_tower." in name for name in trains)
    assert any(".multi_modal_projector." in name for name in trains) == projector
    assert any(".language_model." in name for name in trains)


@pytest.fixture(scope="module")
def trained(llava, tmp_path_factory) -> Path:
    """A vision-language run trained on 24 images with a question each."""
    tmp_path = tmp_path_factory.mktemp("vl")
    data = write_csv(tmp_path / "questions.csv", write_image_questions(tmp_path, 24))
    overrides = [
        "model=vision_language",
        f"model.name_or_path={llava}",
        "model.max_length=48",
        "model.max_new_tokens=4",
        "model.train_projector=true",
        "data=csv",
        f"data.path={data}",
        "data.image_column=file",
        "data.text_column=question",
        "data.response_column=answer",
        "data.label_column=null",
        "audit=none",
        "method=full",  # a random tiny model learns in few steps only with its head (the conformance table runs LoRA)
        "trainer.max_epochs=10",
        "trainer.learning_rate=1e-2",
        "trainer.batch_size=8",
        "trainer.progress_bar=false",
        "trainer.precision=fp32",
        "trainer.early_stopping_metric=loss",
        f"paths.runs_dir={tmp_path}",
        "paths.run_id=vl",
    ]
    assert main(["train", *overrides]) == 0
    return tmp_path / "vl"


def test_vision_language_run_trains_reloads_answers_and_monitors(llava, trained, capsys):
    run = trained
    results = json.loads((run / "results.json").read_text())
    assert {"loss", "exact_match", "rouge_l", "chrf"} <= set(results["test"]), results["test"]
    task = assistant(llava, max_length=48)
    rows = [json.loads(line) for line in (run / "test_predictions.jsonl").read_text().splitlines()]
    untrained, _ = task.evaluate(task.load_pretrained([]), task.encode(rows), 8, torch.device("cpu"))
    # 17 training images teach a random tiny model little beyond them: the loss falls, not far
    assert results["test"]["loss"] < untrained["loss"] - 0.5, (results["test"], untrained)

    answers = [r["prediction"]["response"] for r in rows]
    asked = [{"image": r["image"], "text": r["text"]} for r in rows]
    assert [p["response"] for p in tunewright.load_run(run).predict(asked)] == answers
    assert main(["predict", f"run={run}", f"image={rows[0]['image']}", rows[0]["text"]]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == {"image": rows[0]["image"], "text": rows[0]["text"], "response": answers[0]}
    assert main(["predict", f"run={run}", "which colour is it?"]) == 2  # a usage error
    assert 'give image=<path> "question"' in capsys.readouterr().err

    assert "pipeline_tag: image-text-to-text" in (run / "MODEL_CARD.md").read_text()
    profile = json.loads((run / "reports" / "drift_reference" / "profile.json").read_text())
    assert profile["input_field"] == "image" and "brightness" in profile["descriptor_means"]
    assert profile["descriptor_means"]["question_words"] == 4.0  # "which colour is it?": the prompts are described


def test_the_service_answers_openai_chat_with_an_image_content_part(trained, tmp_path, monkeypatch):
    """The official openai client, unchanged, sends an image as a base64 data: URL and is
    answered as ``predict`` answers; every other way of sending an image is refused."""
    import base64
    import hashlib
    import tempfile

    from fastapi.testclient import TestClient
    from openai import OpenAI

    from tunewright.config import compose_service_config
    from tunewright.serving import build_app, open_runs
    from tunewright.traffic_log import read_lines

    rows = [json.loads(line) for line in (trained / "test_predictions.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["prediction"]["response"])  # an image the tiny model says something about
    expected = tunewright.load_run(trained).predict([{"image": row["image"], "text": row["text"]}])[0]["response"]
    image = Path(row["image"]).read_bytes()
    url = "data:image/png;base64," + base64.b64encode(image).decode()
    asked = [{"type": "text", "text": row["text"]}, {"type": "image_url", "image_url": {"url": url}}]
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the service writes the image it reads
    settings = compose_service_config([], get_plugins()).serve
    app = build_app(open_runs([str(trained)], "tested", False, True), settings)
    with TestClient(app) as http:
        client = OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=http)
        reply = client.chat.completions.create(model="vl", messages=[{"role": "user", "content": asked}])
        assert reply.choices[0].message.content == expected and expected  # a real answer, as predict gives
        streamed = client.chat.completions.create(
            model="vl", messages=[{"role": "user", "content": asked}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in streamed) == expected

        def refused(content, path="/v1/chat/completions") -> tuple[int, str]:
            body = (
                {"messages": [{"role": "user", "content": content}]} if path.endswith("chat/completions") else content
            )
            answer = http.post(path, json=body)
            return answer.status_code, answer.json()["detail"]

        assert refused(row["text"]) == (
            422,
            "messages: model 'vl' answers questions about an image; send one as an image_url content part",
        )
        remote = [asked[0], {"type": "image_url", "image_url": {"url": "http://169.254.169.254/latest"}}]
        assert "the service fetches no URLs" in refused(remote)[1]
        assert "send one image" in refused([*asked, asked[1]])[1]
        broken = [
            asked[0],
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(b"no png").decode()},
            },
        ]
        status, detail = refused(broken)
        assert status == 422 and "the image is not a readable image" in detail and str(tmp_path) not in detail
        assert refused({"inputs": [url]}, "/v1/predict")[0] == 400
        assert refused({"prompt": row["text"]}, "/v1/completions")[0] == 400
    assert not list(tmp_path.glob("tunewright-serve-*"))  # every image written was removed
    logged = [r for shard in (trained / "served").glob("r0-*.jsonl") for r in read_lines(shard)]
    digest = "sha256:" + hashlib.sha256(image).hexdigest()
    assert [(r["image"], r["text"], r["response"]) for r in logged] == [(digest, row["text"], expected)] * 2


def test_image_rows_carry_their_question_or_conversation_and_are_checked(tmp_path):
    from tunewright.plugins.datasets.files import FileDataConfig, _csv, _jsonl

    rows = write_image_questions(tmp_path, 6)
    chats = tmp_path / "chats.jsonl"
    chats.write_text(
        "".join(
            json.dumps(
                {
                    "file": r["file"],
                    "messages": [
                        {"role": "user", "content": r["question"]},
                        {"role": "assistant", "content": r["answer"]},
                    ],
                }
            )
            + "\n"
            for r in rows
        )
    )
    settings = {"image_column": "file", "label_column": None, "validation_fraction": 0.0, "test_fraction": 0.0}
    loaded = _jsonl(
        OmegaConf.structured(FileDataConfig(kind="jsonl", path=str(chats), messages_column="messages", **settings))
    ).load()
    first = loaded.splits["train"][0]
    assert Path(first["image"]).is_file() and first["messages"][-1]["role"] == "assistant"
    assert first["response"] in ("red", "green", "blue") and first["text"] == "user: which colour is it?"

    table = write_csv(tmp_path / "questions.csv", [{k: v for k, v in r.items() if k != "question"} for r in rows])
    config = FileDataConfig(kind="csv", path=str(table), text_column="question", response_column="answer", **settings)
    with pytest.raises(DataError, match=r"questions\.csv.*question"):
        _csv(OmegaConf.structured(config)).load()
    (tmp_path / rows[2]["file"]).write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"chats\.jsonl, row 3: .*002\.png is not a readable image"):
        _jsonl(
            OmegaConf.structured(FileDataConfig(kind="jsonl", path=str(chats), messages_column="messages", **settings))
        ).load()
