"""``tracker=wandb`` in offline mode, read back from the run files W&B wrote."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_run_overrides
from wandb_records import read_records

from tunewright.cli import main


def records_of(run_folder):
    """Every record of every W&B run (training, then each monitor) under the run folder."""
    files = sorted((run_folder / "wandb").glob("offline-run-*/run-*.wandb"))
    assert files, f"no offline W&B run under {run_folder}"
    return [record for path in files for record in read_records(path)], files


def of_type(records, kind):
    return [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]


def items(entries) -> dict:
    """History or summary items by key (W&B stores ``a/b`` keys as nested keys)."""
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in entries}


@pytest.fixture(scope="module")
def wandb_run(tiny_bert, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    overrides = tiny_run_overrides(
        tiny_bert,
        runs,
        "paths.run_id=tracked",
        "tracker=wandb",
        "tracker.wandb.tags=[smoke]",
        "trainer.log_every_n_steps=1",
        "data.limit=120",
    )
    assert main(["train", *overrides]) == 0
    return runs / "tracked"


def test_config_metrics_tables_and_artifacts_are_recorded(wandb_run):
    records, _ = records_of(wandb_run)
    (run,) = of_type(records, "run")[:1]
    assert run.display_name == "tracked" and list(run.tags) == ["smoke"]
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["method"]["kind"] == "lora" and config["trainer"]["max_epochs"] == 1

    history = [items(h.item) for h in of_type(records, "history")]
    train_steps = [row["global_step"] for row in history if "train/loss" in row]
    steps = json.loads((wandb_run / "results.json").read_text())["train"]["steps"]
    assert train_steps == list(range(1, steps + 1))
    assert any("validation/accuracy" in row for row in history)
    assert any(row.get("bias/counterfactual/checks/_type") == "table-file" for row in history)
    assert any(row.get("bias/counterfactual/groups/_type") == "table-file" for row in history)

    summary = {k: v for s in of_type(records, "summary") for k, v in items(s.update).items()}
    assert summary["bias/counterfactual/verdict"] in ("pass", "inconclusive", "fail", "not_applicable")
    assert "test/accuracy" in summary and "data/train_rows" in summary

    artifacts = {a.type: a for a in of_type(records, "artifact") if a.type in ("model", "governance")}
    assert set(artifacts["model"].aliases) >= {"final", "best"}
    assert "adapter_model.safetensors" in {m.path for m in artifacts["model"].manifest.contents}
    governance = {m.path for m in artifacts["governance"].manifest.contents}
    assert {"MODEL_CARD.md", "reports/bias.json", "data_card.json"} <= governance


def test_monitor_resumes_the_same_wandb_run(wandb_run, capsys):
    code = main(
        [
            "monitor",
            f"run={wandb_run}",
            "data=ecommerce_reviews",
            "data.domain=imdb",
            "data.limit=60",
            "monitor.name=imdb",
        ]
    )
    assert code == 0
    assert "W&B runs offline; upload later with: wandb sync" in capsys.readouterr().err
    records, files = records_of(wandb_run)
    ids = {run.run_id for run in of_type(records, "run")}
    assert len(files) == 2 and ids == {json.loads((wandb_run / "wandb_run.json").read_text())["id"]}
    summary = {k: v for s in of_type(records, "summary") for k, v in items(s.update).items()}
    assert summary["drift/imdb/status"] in ("drift", "no_drift")


def test_disabled_mode_writes_nothing_and_a_broken_wandb_never_stops_training(tiny_bert, tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    assert (
        main(
            [
                "train",
                *tiny_run_overrides(
                    tiny_bert, runs, "paths.run_id=off", "tracker=wandb", "tracker.wandb.mode=disabled"
                ),
            ]
        )
        == 0
    )
    assert not (runs / "off" / "wandb").exists() and (runs / "off" / "results.json").is_file()

    import wandb

    def unreachable(*args, **kwargs):
        raise ConnectionError("api.wandb.ai unreachable")

    monkeypatch.setattr(wandb, "init", unreachable)
    assert main(["train", *tiny_run_overrides(tiny_bert, runs, "paths.run_id=down", "tracker=wandb")]) == 0
    assert "W&B start failed (ConnectionError: api.wandb.ai unreachable)" in capsys.readouterr().err
    assert (runs / "down" / "results.json").is_file()


def test_a_sweep_groups_its_wandb_runs(tiny_bert, tmp_path):
    runs = tmp_path / "runs"
    overrides = tiny_run_overrides(tiny_bert, runs, "tracker=wandb", "audit=none", "monitor=none", "data.limit=40")
    assert main(["train", "-m", *overrides, "trainer.learning_rate=1e-3,2e-3"]) == 0
    folders = [p for p in runs.iterdir() if (p / "wandb_run.json").is_file()]
    groups = {run.run_group for folder in folders for run in of_type(records_of(folder)[0], "run")}
    assert len(folders) == 2 and len(groups) == 1 and groups.pop().startswith("sweep-")


def test_a_studys_trials_share_a_wandb_group(tiny_bert, tmp_path):
    overrides = tiny_run_overrides(tiny_bert, tmp_path, "tracker=wandb", "audit=none", "monitor=none", "data.limit=40")
    assert main(["tune", *overrides, "tune.trials=2", "tune.pruner=none"]) == 0
    (study,) = tmp_path.glob("tune-*")
    folders = sorted((study / "trials").iterdir())
    groups = {run.run_group for folder in folders for run in of_type(records_of(folder)[0], "run")}
    assert len(folders) == 2 and groups == {f"study-{study.name}"}
