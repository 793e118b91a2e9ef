"""Image classification and CLIP through the whole pipeline: image folders and CSVs of
image paths load with every bad file named, runs train, save, reload and predict, and
the bias audit on groups works from image predictions as from text ones."""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import ANY

import numpy as np
import pytest
from conftest import write_csv
from edge_runtime import FP32_RUN, predict_without_pytorch
from omegaconf import OmegaConf
from vision_models import save_tiny_vision_model, write_images

import tunewright
from tunewright.cleaning import clean
from tunewright.cli import main
from tunewright.errors import DataError
from tunewright.export import export_run
from tunewright.plugins.datasets.files import FileDataConfig, _csv
from tunewright.plugins.datasets.image_folder import ImageFolder, ImageFolderConfig

LABELS = ["green", "red"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """60 images in one folder per label."""
    root = tmp_path_factory.mktemp("photos")
    for path, label in write_images(root / "pool", 60, LABELS):
        (root / label).mkdir(exist_ok=True)
        path.rename(root / label / path.name)
    (root / "pool").rmdir()
    return root


@pytest.fixture(scope="module")
def vision_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vision-models")
    return {family: save_tiny_vision_model(family, root / family) for family in ("vit", "resnet", "clip")}


def run_overrides(model_kind: str, model_dir: Path, runs: Path, *extra: str) -> list[str]:
    return [
        f"model={model_kind}",
        f"model.name_or_path={model_dir}",
        "trainer.max_epochs=2",
        "trainer.learning_rate=5e-3",
        "trainer.progress_bar=false",
        f"paths.runs_dir={runs}",
        "paths.run_id=r",
        *extra,
    ]


def test_image_folder_loads_labels_from_folders_and_splits(photos):
    data = ImageFolder(OmegaConf.structured(ImageFolderConfig(kind="image_folder", path=str(photos)))).load()
    assert data.label_names == LABELS
    assert {split: len(rows) for split, rows in data.splits.items()} == {"train": 42, "validation": 6, "test": 12}
    example = data.splits["test"][0]
    assert Path(example["image"]).is_file() and LABELS[example["label"]] == Path(example["image"]).parent.name
    assert data.sources[0]["path"].endswith("(60 images)")


def test_image_folder_with_split_folders_uses_them(tmp_path):
    for split, count in (("train", 8), ("val", 4), ("test", 4)):
        for path, label in write_images(tmp_path / "pool" / split, count, LABELS, seed=len(split)):
            (tmp_path / "photos" / split / label).mkdir(parents=True, exist_ok=True)
            path.rename(tmp_path / "photos" / split / label / path.name)
    data = ImageFolder(
        OmegaConf.structured(ImageFolderConfig(kind="image_folder", path=str(tmp_path / "photos")))
    ).load()
    assert {split: len(rows) for split, rows in data.splits.items()} == {"train": 8, "validation": 4, "test": 4}


def test_a_corrupt_image_is_named_before_training(tmp_path):
    write_images(tmp_path / "photos" / "red", 3, ["red"])
    write_images(tmp_path / "photos" / "green", 3, ["green"])
    (tmp_path / "photos" / "green" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match=r"broken\.png is not a readable image"):
        ImageFolder(OmegaConf.structured(ImageFolderConfig(kind="image_folder", path=str(tmp_path / "photos")))).load()


def write_image_csv(directory: Path, rows: list[dict]) -> Path:
    return write_csv(directory / "images.csv", rows)


def test_csv_image_paths_resolve_beside_the_file_and_a_missing_one_names_its_row(tmp_path):
    images = write_images(tmp_path / "img", 10, LABELS)
    rows = [{"file": f"img/{path.name}", "label": label} for path, label in images]
    path = write_image_csv(tmp_path, rows)
    config = OmegaConf.structured(FileDataConfig(kind="csv", path=str(path), image_column="file", text_column="unused"))
    data = _csv(config).load()
    assert all(Path(e["image"]).is_file() and "text" not in e for rows in data.splits.values() for e in rows)
    assert any(source["path"].endswith("(10 images)") for source in data.sources)
    rows[6]["file"] = "img/missing.png"
    write_image_csv(tmp_path, rows)
    with pytest.raises(DataError, match=r"images\.csv, row 8: no image file .*missing\.png"):
        _csv(config).load()


def test_cleaning_removes_the_same_picture_under_another_name(tmp_path):
    images = write_images(tmp_path / "img", 6, LABELS)
    copy = tmp_path / "img" / "copy.png"
    copy.write_bytes(images[0][0].read_bytes())
    rows = [{"file": f"img/{p.name}", "label": label} for p, label in images] + [
        {"file": "img/copy.png", "label": images[0][1]}
    ]
    config = OmegaConf.structured(
        FileDataConfig(
            kind="csv",
            path=str(write_image_csv(tmp_path, rows)),
            image_column="file",
            validation_fraction=0.0,
            test_fraction=0.0,
        )
    )
    data, report = clean(_csv(config).load(), config.cleaning)
    assert len(data.splits["train"]) == 6
    assert [step["step"] for step in report.steps] == ["deduplicate"]


@pytest.mark.parametrize(
    ("model_kind", "family", "method"),
    [("image_classification", "vit", "lora"), ("image_classification", "resnet", "freeze"), ("clip", "clip", "lora")],
)
def test_image_run_trains_reloads_and_predicts(photos, vision_models, tmp_path, capsys, model_kind, family, method):
    augment = ["model.augment=true"] if family == "vit" else []  # training batches through collate_train
    overrides = run_overrides(
        model_kind,
        vision_models[family],
        tmp_path,
        "data=image_folder",
        f"data.path={photos}",
        f"method={method}",
        *augment,
    )
    assert main(["train", *overrides]) == 0
    assert "predicts from images; skipping counterfactual" in capsys.readouterr().err
    run = tmp_path / "r"
    results = json.loads((run / "results.json").read_text())
    assert results["test"]["accuracy"] > 0.5 and results["data"]["test"] == 12
    rows = [json.loads(line) for line in (run / "test_predictions.jsonl").read_text().splitlines()]
    reloaded = tunewright.load_run(run).predict([row["image"] for row in rows])
    expected = np.array([[row["prediction"]["probabilities"][label] for label in LABELS] for row in rows])
    got = np.array([[p["probabilities"][label] for label in LABELS] for p in reloaded])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert main(["predict", f"run={run}", rows[0]["image"]]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["image"] == rows[0]["image"] and printed["label"] == rows[0]["prediction"]["label"]
    card = (run / "MODEL_CARD.md").read_text()
    tag = "zero-shot-image-classification" if model_kind == "clip" else "image-classification"
    assert (
        f"pipeline_tag: {tag}" in card and "held-out images" in card and "predict run=" in card and "photo.jpg" in card
    )


def test_group_audit_runs_on_image_predictions(vision_models, tmp_path):
    images = write_images(tmp_path / "img", 60, LABELS)
    rows = [
        {"file": f"img/{p.name}", "label": label, "site": "north" if i % 3 else "south"}
        for i, (p, label) in enumerate(images)
    ]
    path = write_image_csv(tmp_path, rows)
    overrides = run_overrides(
        "image_classification",
        vision_models["vit"],
        tmp_path / "runs",
        "data=csv",
        f"data.path={path}",
        "data.image_column=file",
        "data.sensitive_columns=[site]",
        "audit=group_metrics",
    )
    assert main(["train", *overrides]) == 0
    bias = json.loads((tmp_path / "runs" / "r" / "reports" / "bias.json").read_text())
    audit = bias["audits"]["group_metrics"]
    assert {group["group"] for group in audit["groups"]} >= {"site=north", "site=south"}
    test_rows = json.loads((tmp_path / "runs" / "r" / "results.json").read_text())["data"]["test"]
    assert sum(group["size"] for group in audit["groups"]) == test_rows  # every test image in one group


def test_image_drift_reference_and_monitor(photos, vision_models, tmp_path):
    """An image run records a drift reference with image descriptors; a batch of the same
    kind of images does not drift on them, a batch of larger, darker images does."""
    from PIL import Image

    assert (
        main(
            [
                "train",
                *run_overrides(
                    "image_classification",
                    vision_models["vit"],
                    tmp_path / "runs",
                    "data=image_folder",
                    f"data.path={photos}",
                    "audit=none",
                ),
            ]
        )
        == 0
    )
    run = tmp_path / "runs" / "r"
    profile = json.loads((run / "reports" / "drift_reference" / "profile.json").read_text())
    assert profile["input_field"] == "image" and profile["rows"] == 18
    assert set(profile["descriptor_means"]) >= {"brightness", "contrast", "saturation", "width"}

    same = write_images(tmp_path / "same", 40, LABELS, seed=5)
    shifted = tmp_path / "shifted"
    shifted.mkdir()
    for path, _ in same:  # the same pictures, four times larger and at a third of the light
        image = Image.open(path)
        dark = Image.eval(image.resize((80, 80)), lambda value: value // 3)
        dark.save(shifted / path.name)
    verdicts = {}
    for name, folder in (("same", tmp_path / "same"), ("shifted", shifted)):
        rows = [
            {"file": str(p), "label": label} for p, label in zip(sorted(folder.glob("*.png")), [lab for _, lab in same])
        ]
        batch = write_image_csv(folder, rows)
        assert (
            main(
                [
                    "monitor",
                    f"run={run}",
                    "data=csv",
                    f"data.path={batch}",
                    "data.image_column=file",
                    f"monitor.name={name}",
                ]
            )
            == 0
        )
        report = json.loads((run / "reports" / f"drift-{name}.json").read_text())
        verdicts[name] = report["windows"][0]["layers"]["descriptors"]
    assert not verdicts["same"]["drifted"], verdicts["same"]
    assert verdicts["shifted"]["drifted"] and {"width", "brightness"} <= set(verdicts["shifted"]["drifted_columns"])


@pytest.mark.distributed
def test_image_run_under_ddp_on_two_processes(photos, vision_models, tmp_path):
    """Image batches are decoded per rank: two Gloo processes train one run folder, and
    the saved model reloads to the predictions rank 0 recorded."""
    import subprocess
    import sys

    overrides = run_overrides(
        "image_classification",
        vision_models["vit"],
        tmp_path,
        "data=image_folder",
        f"data.path={photos}",
        "trainer=ddp",
        "trainer.nproc_per_node=2",
        "audit=none",
    )
    result = subprocess.run(
        [sys.executable, "-m", "tunewright", "train", *overrides], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    run = tmp_path / "r"
    assert json.loads((run / "manifest.json").read_text())["world_size"] == 2
    rows = [json.loads(line) for line in (run / "test_predictions.jsonl").read_text().splitlines()]
    predicted = tunewright.load_run(run).predict([row["image"] for row in rows])
    assert [p["label"] for p in predicted] == [row["prediction"]["label"] for row in rows]


def test_augmentation_changes_training_batches_only(photos, vision_models):
    """With model.augment, two training batches of the same images differ (random crops
    and mirroring), drawn from torch's seeded generator; evaluation batches never change."""
    import torch

    from tunewright.plugin_manager import get_plugins
    from tunewright.plugins.models.image_classification import ImageClassificationConfig

    config = ImageClassificationConfig(
        kind="image_classification", name_or_path=str(vision_models["vit"]), augment=True
    )
    task = get_plugins().registries["models"].build(OmegaConf.structured(config))
    images = sorted((photos / "red").iterdir())[:4]
    features = task.encode([{"image": str(path), "label": 1} for path in images])
    torch.manual_seed(0)
    first, second = task.collate_train(features)["pixel_values"], task.collate_train(features)["pixel_values"]
    assert not torch.equal(first, second)
    torch.manual_seed(0)
    assert torch.equal(task.collate_train(features)["pixel_values"], first)  # the same seed draws the same crops
    assert torch.equal(task.collate(features)["pixel_values"], task.collate(features)["pixel_values"])
    plain = (
        get_plugins()
        .registries["models"]
        .build(
            OmegaConf.structured(
                ImageClassificationConfig(kind="image_classification", name_or_path=str(vision_models["vit"]))
            )
        )
    )
    assert torch.equal(plain.collate_train(features)["pixel_values"], plain.collate(features)["pixel_values"])


def test_an_image_classifier_exports_to_onnx_and_runs_without_pytorch(vision_models, tmp_path, capsys):
    images = write_images(tmp_path / "img", 60, LABELS)
    rows = [
        {"file": f"img/{p.name}", "label": label, "site": "north" if i % 3 else "south"}
        for i, (p, label) in enumerate(images)
    ]
    overrides = run_overrides(
        "image_classification",
        vision_models["vit"],
        tmp_path / "runs",
        "data=csv",
        f"data.path={write_image_csv(tmp_path, rows)}",
        "data.image_column=file",
        "data.sensitive_columns=[site]",
        "audit=group_metrics",
        "method=lora",
        FP32_RUN,
    )
    assert main(["train", *overrides]) == 0
    run = tmp_path / "runs" / "r"
    folder = export_run(run, override="tested", format="onnx")
    record = json.loads((folder / "edge.json").read_text())
    assert record["input"] == "image" and record["check"]["agreement"] == 1.0
    assert record["check"]["max_probability_difference"] < 1e-4  # the numpy preprocessing is the processor's
    assert record["audit"]["verdicts"] == record["audit"]["run_verdicts"] == {"group_metrics": ANY}
    test_images = [json.loads(line)["image"] for line in (run / "test_predictions.jsonl").read_text().splitlines()]
    answers = predict_without_pytorch(folder, test_images)
    got = [[answer["probabilities"][label] for label in LABELS] for answer in answers]
    np.testing.assert_allclose(got, tunewright.load_run(run).probabilities(test_images), atol=1e-4)
    assert main(["predict", f"run={folder}", test_images[0]]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["image"] == test_images[0] and set(printed["probabilities"]) == set(LABELS)
    int8 = json.loads(
        (
            export_run(run, override="tested", format="onnx", quantize="int8", accept_drop="12 test images")
            / "edge.json"
        ).read_text()
    )
    assert int8["check"]["size_bytes"] < record["check"]["size_bytes"]


def test_clip_exports_with_its_label_prompts_inside_the_graph(photos, vision_models, tmp_path):
    overrides = run_overrides("clip", vision_models["clip"], tmp_path, "data=image_folder", f"data.path={photos}")
    assert main(["train", *overrides, "method=lora", FP32_RUN]) == 0
    folder = export_run(tmp_path / "r", override="tested", format="onnx")
    check = json.loads((folder / "edge.json").read_text())["check"]
    assert check["agreement"] == 1.0 and check["max_probability_difference"] < 1e-4
    images = sorted(str(path) for path in photos.rglob("*.png"))[:4]
    got = [[a["probabilities"][label] for label in LABELS] for a in predict_without_pytorch(folder, images)]
    np.testing.assert_allclose(got, tunewright.load_run(tmp_path / "r").probabilities(images), atol=1e-4)
