"""``tunewright tune``: real trials of a tiny BERT, pruning, resume after a kill, Pareto fronts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tiny_run_overrides

from tunewright.cli import main
from tunewright.errors import ConfigError
from tunewright.plugin_manager import get_plugins
from tunewright.study_report import pareto_front, recommendation
from tunewright.tuning import open_study, run_study

# Two epochs of 4 steps, validated every 2 steps: four evaluations a pruner can act on.
FIXED = [
    "search.params.trainer.max_epochs=int 2 2",
    "search.params.trainer.batch_size=choice 16",
    "trainer.eval_every_n_steps=2",
]


def base(tiny_bert, tmp_path, *extra: str) -> list[str]:
    return [*tiny_run_overrides(tiny_bert, tmp_path, "data.limit=100", *extra), *FIXED]


def study_folder(tmp_path):
    (folder,) = tmp_path.glob("tune-*")
    return folder


def test_a_study_trains_normal_run_folders_and_recommends_its_best(tiny_bert, tmp_path, capsys):
    assert main(["tune", *base(tiny_bert, tmp_path), "tune.trials=2", "tune.pruner=none", "tune.promote=true"]) == 0
    folder = study_folder(tmp_path)
    study = json.loads((folder / "study.json").read_text())
    assert [t["state"] for t in study["trials"]] == ["complete", "complete"]
    for trial in study["trials"]:
        run = folder / "trials" / trial["run_id"]
        results = json.loads((run / "results.json").read_text())
        assert results["completed"] and (run / "model").is_dir() and (run / "MODEL_CARD.md").is_file()
        assert (run / "reports" / "bias.json").is_file()  # audits ran, as in any run
        drawn = trial["params"]["trainer.learning_rate"]
        assert (
            json.loads((run / "manifest.json").read_text())
            and f"learning_rate: {drawn}" in (run / "config.yaml").read_text()
        )
    best = max(study["trials"], key=lambda t: t["validation.accuracy"])
    assert study["recommended"]["run_id"] == study["promoted"] == best["run_id"]
    manifest = json.loads((folder / "trials" / best["run_id"] / "manifest.json").read_text())
    assert manifest["promoted_by"]["trial"] == best["number"]
    out = capsys.readouterr().out
    assert f"recommended: {best['run_id']}" in out and "| trial | state | run |" in out
    page = (folder / "report.html").read_text()
    assert "<svg" in page and f"trials/{best['run_id']}/MODEL_CARD.md" in page and "<script" not in page
    assert (folder / "trials.csv").read_text().splitlines()[0].startswith("number,state,run_id,validation.accuracy")


def test_a_planted_bad_learning_rate_is_pruned_and_its_folder_says_where(tiny_bert, tmp_path):
    overrides = [*base(tiny_bert, tmp_path, "audit=none", "monitor=none"), "tune.trials=2"]
    overrides += ["tune.objectives=[validation.loss:min]", "tune.startup_trials=1"]
    overrides += ["search.params.trainer.learning_rate=choice 0.005 1.0"]
    study = open_study(overrides, get_plugins())
    planted = {"trainer.max_epochs": 2, "trainer.batch_size": 16, "trainer.warmup_ratio": 0.0}
    planted |= {"method.r": 8, "method.alpha": 16, "method.dropout": 0.0}
    study.optuna_study.enqueue_trial({**planted, "trainer.learning_rate": 0.005})
    study.optuna_study.enqueue_trial({**planted, "trainer.learning_rate": 1.0})  # far too large: the loss blows up
    run_study(study, get_plugins(), say=lambda line: None)
    good, bad = study.optuna_study.trials
    assert good.state.name == "COMPLETE" and bad.state.name == "PRUNED"
    manifest = json.loads((study.folder / "trials" / "trial-0001" / "manifest.json").read_text())
    assert manifest["pruned"]["step"] < 8 and manifest["pruned"]["metric"] == "validation.loss"
    assert not (study.folder / "trials" / "trial-0001" / "results.json").exists()


def test_a_killed_study_resumes_without_rerunning_finished_trials(tiny_bert, tmp_path):
    overrides = [*base(tiny_bert, tmp_path, "audit=none", "monitor=none"), "tune.pruner=none", "tune.trials=2"]
    process = subprocess.Popen(
        [sys.executable, "-m", "tunewright", "tune", *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob("tune-*/trials/trial-0001/checkpoints/step-*")):  # the second trial is under way
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "the second trial never checkpointed"
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    folder = study_folder(tmp_path)
    first = folder / "trials" / "trial-0000" / "results.json"
    written = first.stat().st_mtime_ns

    assert main(["tune", f"tune.study={folder}", "tune.trials=3"]) == 0
    study = json.loads((folder / "study.json").read_text())
    states = [(t["number"], t["state"], t["run_id"]) for t in study["trials"]]
    assert states[:2] == [(0, "complete", "trial-0000"), (1, "fail", "trial-0001")]  # cut off, then retried
    assert states[2] == (2, "complete", "trial-0001")  # in the folder it was cut off in
    assert study["trials"][2]["params"] == study["trials"][1]["params"]
    assert first.stat().st_mtime_ns == written  # the finished trial was not rerun
    resumed = json.loads((folder / "trials" / "trial-0001" / "results.json").read_text())
    assert resumed["train"]["resumed_from_step"]  # training went on from the trial's checkpoint
    with pytest.raises(ConfigError, match="a study keeps its space and data"):
        open_study([f"tune.study={folder}", "trainer.max_epochs=9"], get_plugins())


def test_several_objectives_give_a_pareto_front_holding_each_objectives_best(tiny_bert, tmp_path):
    overrides = [*base(tiny_bert, tmp_path, "audit=none", "monitor=none"), "tune.trials=4", "tune.sampler=random"]
    overrides += ["tune.objectives=[validation.accuracy:max,validation.loss:min]"]
    study = open_study(overrides, get_plugins())
    run_study(study, get_plugins(), say=lambda line: None)
    finished = [t for t in study.optuna_study.trials if t.state.name == "COMPLETE"]
    assert len(finished) == 4
    front = {t.number for t in pareto_front(study)}
    # the best on each objective (ties broken by the other one) is on the front
    assert max(finished, key=lambda t: (t.values[0], -t.values[1])).number in front
    assert min(finished, key=lambda t: (t.values[1], -t.values[0])).number in front
    for trial in finished:  # every trial off the front is beaten on both objectives by one on it
        if trial.number not in front:
            assert any(
                f.values[0] >= trial.values[0] and f.values[1] <= trial.values[1]
                for f in study.optuna_study.trials
                if f.number in front
            )
    assert recommendation(study)["number"] in front
    assert "Pareto front" in (study.folder / "report.html").read_text()


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("+search.params.method.rank=int 1 4", "method.rank"),
        ("search.params.trainer.max_epochs=int 1", "write 'float LOW HIGH [log] [step=S]'"),
        ("search.params.trainer.max_epochs=int 0 3", "trainer.max_epochs=0"),
        ("tune.objectives=[test.accuracy:max]", "test metrics are reported, never optimised"),
        ("tune.trails=3", "tune.trails: unknown key"),
        ("trainer.batch_size=8,16", "only method= may list several values"),
        (("trainer=ddp", "trainer.nproc_per_node=2"), "torchrun --nproc_per_node 2 -m tunewright tune"),
        ("tune.trials=0", "tune.trials=0 with no timeout would never end"),
    ],
)
def test_a_bad_study_fails_before_any_training_with_the_key_named(tiny_bert, tmp_path, capsys, override, named):
    given = [override] if isinstance(override, str) else list(override)
    assert main(["tune", *base(tiny_bert, tmp_path), *given]) == 2
    assert named in capsys.readouterr().err
    assert not list(tmp_path.glob("tune-*"))  # nothing trained, nothing written


def test_a_sweep_ends_with_a_table_of_its_runs(tiny_bert, tmp_path, capsys):
    overrides = tiny_run_overrides(tiny_bert, tmp_path, "audit=none", "monitor=none")
    assert main(["train", "-m", *overrides, "method=lora,ia3"]) == 0
    out = capsys.readouterr().out
    assert "sweep job 0: method=lora" in out and "sweep job 1: method=ia3" in out and "#1 :" not in out
    (folder,) = (tmp_path / "sweeps").iterdir()
    jobs = json.loads((folder / "summary.json").read_text())
    assert [job["swept"] for job in jobs] == [{"method": "lora"}, {"method": "ia3"}]
    for job in jobs:  # each numbered sweep folder points at its run, which holds the same figures
        assert json.loads((folder / str(job["job"]) / "run.json").read_text()) == job
        assert json.loads((Path(job["run_folder"]) / "results.json").read_text())["test"] == job["test"]
    table = (folder / "summary.md").read_text()
    assert table.startswith("| job | method | test accuracy |") and table in out
    assert all(Path(job["run_folder"]).name in table for job in jobs)


def test_the_method_itself_can_be_searched(tiny_bert, tmp_path):
    overrides = [*tiny_run_overrides(tiny_bert, tmp_path, "audit=none", "monitor=none"), "method=lora,ia3"]
    study = open_study([*overrides, "tune.trials=4", "tune.sampler=random", "tune.pruner=none"], get_plugins())
    assert {p.name for p in study.spaces["lora"]} >= {"lora/method.r", "lora/trainer.learning_rate"}
    assert "ia3/trainer.learning_rate" in {p.name for p in study.spaces["ia3"]}
    run_study(study, get_plugins(), say=lambda line: None)
    for trial in study.optuna_study.trials:
        method = trial.params["method"]
        config = (study.folder / "trials" / trial.user_attrs["run_id"] / "config.yaml").read_text()
        assert f"kind: {method}" in config
        assert all(name == "method" or name.startswith(f"{method}/") for name in trial.params)
        assert f"learning_rate: {trial.params[f'{method}/trainer.learning_rate']}" in config


def test_the_timeout_stops_the_study_from_starting_another_trial(tiny_bert, tmp_path, capsys):
    overrides = tiny_run_overrides(tiny_bert, tmp_path, "audit=none", "monitor=none")
    began = time.time()
    assert main(["tune", *overrides, "tune.trials=0", "tune.timeout=2s", "tune.pruner=none"]) == 0
    assert "tune.timeout=2s reached" in capsys.readouterr().out
    study = open_study([f"tune.study={study_folder(tmp_path)}"], get_plugins()).optuna_study
    starts = [trial.datetime_start.timestamp() for trial in study.trials]
    assert starts and all(start - began < 2 + 5 for start in starts)  # none began after the budget (+ set-up)
    assert all(trial.state.name == "COMPLETE" for trial in study.trials)


def test_the_fairness_objective_is_the_check_closest_to_its_limit():
    from tunewright.tuning import worst_limit_use

    audits = {
        "counterfactual": {
            "checks": [
                {"value": 0.01, "limits": {"max": 0.02}},  # half of its upper limit
                {"value": 0.9, "limits": {"min": 0.8}},  # 0.8 / 0.9 of the way down to its lower limit
                {"value": None, "limits": {"max": 0.1}},  # not measured: no say
            ]
        },
        "group": {"checks": [{"value": 0.03, "limits": {"max": 0.1}}]},
    }
    assert worst_limit_use(audits) == pytest.approx(0.8 / 0.9)
    audits["group"]["checks"].append({"value": 0.25, "limits": {"max": 0.1}})  # breaks its limit
    assert worst_limit_use(audits) == pytest.approx(2.5)
    with pytest.raises(ConfigError, match="needs audits with limits"):
        worst_limit_use({})


def test_a_trial_shorter_than_the_evaluation_interval_is_judged_at_its_last_step(tiny_bert, tmp_path):
    overrides = [*base(tiny_bert, tmp_path, "audit=none", "monitor=none"), "trainer.eval_every_n_steps=1000"]
    study = open_study([*overrides, "tune.trials=1", "tune.pruner=none"], get_plugins())
    run_study(study, get_plugins(), say=lambda line: None)
    (trial,) = study.optuna_study.trials
    assert trial.state.name == "COMPLETE" and 0.0 <= trial.value <= 1.0
    results = json.loads((study.folder / "trials" / trial.user_attrs["run_id"] / "results.json").read_text())
    assert results["train"]["best_step"] == results["train"]["steps"]  # its one evaluation: after the last step
