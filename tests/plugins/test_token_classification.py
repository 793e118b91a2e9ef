"""Token classification (named entities): tagged words load with every bad row named,
words align to sub-word tokens, entity spans are scored exactly, and a run trains,
reloads and tags new text."""

from __future__ import annotations

import json
import random

import pytest
from edge_runtime import predict_without_pytorch
from omegaconf import OmegaConf

import tunewright
from tunewright.cli import main
from tunewright.entities import entity_scores, spans
from tunewright.errors import DataError
from tunewright.export import export_run
from tunewright.plugins.datasets.files import FileDataConfig, _jsonl
from tunewright.plugins.models.token_classification import IGNORE

NAMES = ["Alice Smith", "Bob", "Carlos Diaz", "Dana", "Eve Stone", "Farid", "Grace Lee", "Hiro", "Ines Costa", "Jamal"]
CITIES = ["Paris", "New York", "Lagos", "Tokyo", "Lima", "Oslo", "Cape Town", "Berlin", "Mumbai", "Quito"]
TEMPLATES = [
    "{p} lives in {c}",
    "{p} flew to {c} on Monday",
    "yesterday {p} visited {c}",
    "the office in {c} hired {p}",
    "{c} is where {p} was born",
    "we met {p} near {c} station",
]


def tagged_rows(count: int, seed: int = 0) -> list[dict]:
    """Sentences from the templates with a person (PER) and a city (LOC), in BIO tags."""
    rng, rows = random.Random(seed), []
    for _ in range(count):
        words, tags = [], []
        fillers = {"{p}": (rng.choice(NAMES), "PER"), "{c}": (rng.choice(CITIES), "LOC")}
        for piece in rng.choice(TEMPLATES).split():
            text, kind = fillers.get(piece, (piece, None))
            for i, word in enumerate(text.split()):
                words.append(word)
                tags.append("O" if kind is None else f"{'B' if i == 0 else 'I'}-{kind}")
        rows.append({"words": words, "tags": tags})
    return rows


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def config(path: str, **fields):
    return OmegaConf.structured(
        FileDataConfig(kind="jsonl", path=path, words_column="words", tags_column="tags", **fields)
    )


def test_spans_follow_bio_and_scores_need_exact_spans():
    assert spans(["B-PER", "I-PER", "O", "B-LOC"]) == [(0, 2, "PER"), (3, 4, "LOC")]
    assert spans(["I-LOC", "I-LOC", "B-LOC", "I-PER"]) == [
        (0, 2, "LOC"),
        (2, 3, "LOC"),
        (3, 4, "PER"),
    ]  # I- opens after another type
    truth = [["B-PER", "I-PER", "O", "B-LOC"]]
    assert entity_scores(truth, truth)["entity_f1"] == 1.0
    cut_short = entity_scores(truth, [["B-PER", "O", "O", "B-LOC"]])  # PER boundary wrong: only LOC matches
    assert cut_short == {"entity_precision": 0.5, "entity_recall": 0.5, "entity_f1": 0.5}


def test_tagged_rows_load_and_bad_rows_are_named(tmp_path):
    rows = tagged_rows(30)
    data = _jsonl(config(write_jsonl(tmp_path / "ner.jsonl", rows))).load()
    assert data.label_names == ["B-LOC", "B-PER", "I-LOC", "I-PER", "O"]
    example = data.splits["train"][0]
    assert len(example["words"]) == len(example["tags"]) and example["text"] == " ".join(example["words"])
    from tunewright.cleaning import clean, data_card

    cleaned, report = clean(data, config("x").cleaning)
    composition = data_card("jsonl", cleaned, report, [])["composition"]["train"]
    assert (
        composition["labels"]["O"] == sum(t == 4 for e in cleaned.splits["train"] for t in e["tags"]) > 0
    )  # tags counted

    rows[4]["tags"] = rows[4]["tags"][:-1]
    with pytest.raises(DataError, match=r"ner\.jsonl, row 5: \d+ words but \d+ tags in column 'tags'"):
        _jsonl(config(write_jsonl(tmp_path / "ner.jsonl", rows))).load()
    rows = tagged_rows(30)
    rows[7]["tags"][0] = "B-ORG"
    with pytest.raises(DataError, match=r"row 8: unknown tag 'B-ORG'"):
        _jsonl(
            config(write_jsonl(tmp_path / "ner.jsonl", rows), labels=["B-LOC", "B-PER", "I-LOC", "I-PER", "O"])
        ).load()
    rows[7]["words"] = "not a list"
    with pytest.raises(DataError, match=r"row 8: the words must be a non-empty list"):
        _jsonl(config(write_jsonl(tmp_path / "ner.jsonl", rows))).load()


def test_a_words_first_token_carries_its_tag(tiny_bert):
    from tunewright.plugin_manager import get_plugins

    task = (
        get_plugins()
        .registries["models"]
        .build(
            OmegaConf.create(
                {
                    "kind": "token_classification",
                    "name_or_path": str(tiny_bert),
                    "max_length": 32,
                    "trust_remote_code": False,
                    "revision": None,
                }
            )
        )
    )
    (feature,) = task.encode([{"words": ["Ouagadougou", "is", "far"], "tags": [1, 0, 0]}])
    pieces = [w for w in feature["word_ids"] if w == 0]
    assert len(pieces) > 1  # a long rare word splits into several tokens
    tagged = [label for label in feature["labels"] if label != IGNORE]
    assert tagged == [1, 0, 0]  # one label per word, on its first token


def test_ner_run_trains_reloads_and_tags_new_text(tmp_path, capsys):
    path = write_jsonl(tmp_path / "ner.jsonl", tagged_rows(120))
    overrides = [
        "model=token_classification",
        "data=jsonl",
        f"data.path={path}",
        "data.words_column=words",
        "data.tags_column=tags",
        "trainer.max_epochs=3",
        "trainer.learning_rate=5e-3",
        "trainer.progress_bar=false",
        f"paths.runs_dir={tmp_path}",
        "paths.run_id=ner",
    ]
    assert main(["train", *overrides]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip().endswith("skipping counterfactual") and "test entity F1:" in captured.out
    run = tmp_path / "ner"
    results = json.loads((run / "results.json").read_text())
    assert {"loss", "accuracy", "entity_precision", "entity_recall", "entity_f1"} == set(results["test"])
    assert results["test"]["entity_f1"] > 0.8  # the embedded MiniLM learns these templates in three epochs

    rows = [json.loads(line) for line in (run / "test_predictions.jsonl").read_text().splitlines()]
    assert all(len(row["prediction"]["tags"]) == len(row["words"]) for row in rows)
    (answer,) = tunewright.load_run(run).predict(["yesterday Grace Lee visited Oslo"])
    assert answer["words"] == ["yesterday", "Grace", "Lee", "visited", "Oslo"]
    assert {"type": "PER", "text": "Grace Lee", "start": 1, "end": 3} in answer["entities"]
    assert "pipeline_tag: token-classification" in (run / "MODEL_CARD.md").read_text()

    # No class probabilities, but a drift reference of the texts' descriptors and embeddings.
    batch = tmp_path / "reviews.jsonl"
    batch.write_text(
        "".join(
            json.dumps({"text": f"Terrible!!! Product #{i} broke after {i} days... 1/10"}) + "\n" for i in range(40)
        )
    )
    assert main(["monitor", f"run={run}", "data=jsonl", f"data.path={batch}", "data.label_column=null"]) == 0
    report = json.loads((run / "reports" / "drift-reviews.json").read_text())
    assert report["drift_detected"] and report["windows"][0]["layers"]["descriptors"]["drifted"]

    # The tagger exports to ONNX and tags on onnxruntime as the run does, without PyTorch.
    folder = export_run(run, override="no audit applies to a tagger", format="onnx")
    check = json.loads((folder / "edge.json").read_text())["check"]
    assert check["agreement"] == 1.0 and check["artifact"] == pytest.approx(check["pytorch"], abs=1e-9)
    assert check["test_words"] == sum(len(row["words"]) for row in rows)
    texts = ["yesterday Grace Lee visited Oslo", " ".join(rows[0]["words"]), "Hiro"]
    assert predict_without_pytorch(folder, texts) == tunewright.load_run(run).predict(texts)
    assert "words in" in (folder / "README.md").read_text() and "test entity F1" in (folder / "README.md").read_text()
