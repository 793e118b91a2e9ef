"""Drift monitoring: a model trained on Amazon review sentences, fed new batches.

Held-out Amazon sentences must not drift; IMDB and Yelp sentences (same source, other
domains) must, in the embedding and descriptor layers. Bad input gets a clear message
or an ``insufficient_data`` verdict.
"""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from tunewright import hookimpl
from tunewright.cli import main
from tunewright.errors import ConfigError, DataError, RunFolderError
from tunewright.monitoring import monitor_run
from tunewright.plugin_manager import get_plugins
from tunewright.plugins.datasets.ecommerce_reviews import DATA, DOMAIN_FILES
from tunewright.readers import read_separated_lines

TRAIN_ROWS = 600  # of Amazon's 1000; the other 400 are the held-out batch
# IMDB rows monitored against the Amazon run: with 100, whether the accuracy drop (about
# 0.06) is significant and the embeddings drift depended on the trained model's draw;
# 300 settle both.
IMDB_ROWS = 300


def write_csv(path, rows, header=("text", "label")):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def domain_rows(domain: str) -> list[tuple[str, str]]:
    names = {"0": "negative", "1": "positive"}
    return [(text, names[label]) for _, text, label in read_separated_lines(DATA / DOMAIN_FILES[domain], "\t")]


@pytest.fixture(scope="module")
def amazon_run(tmp_path_factory):
    """The default model and method trained on 600 Amazon sentences."""
    root = tmp_path_factory.mktemp("monitor")
    rows = domain_rows("amazon")
    train = write_csv(root / "amazon-train.csv", rows[:TRAIN_ROWS])
    write_csv(root / "amazon-heldout.csv", rows[TRAIN_ROWS:])
    code = main(
        [
            "train",
            "data=csv",
            f"data.path={train}",
            "trainer.max_epochs=3",
            # One trained draw, pinned: precision=auto trains in bf16 on CPUs with native
            # bf16, another draw. Seed 42 in bf16 separated IMDB's embeddings at ROC AUC
            # 0.556 (limit 0.564, not drift); seeds 1 and 2 in bf16 at 0.826 and 0.706,
            # fp32 at 0.712. benchmarks/drift_rates.py counts over seeds.
            "trainer.precision=fp32",
            "audit=none",
            "trainer.progress_bar=false",
            f"paths.runs_dir={root / 'runs'}",
            "paths.run_id=amazon",
        ]
    )
    assert code == 0
    return root


def monitor(run_root, *overrides):
    (report,) = monitor_run(run_root / "runs" / "amazon", list(overrides), get_plugins())
    return report


def test_run_records_a_reference_profile(amazon_run):
    reference = amazon_run / "runs" / "amazon" / "reports" / "drift_reference"
    profile = json.loads((reference / "profile.json").read_text())
    rows = [json.loads(line) for line in (reference / "rows.jsonl").read_text().splitlines()]
    held_out = json.loads((amazon_run / "runs" / "amazon" / "results.json").read_text())["data"]
    assert profile["rows"] == len(rows) == held_out["validation"] + held_out["test"]
    assert profile["embedding_dimensions"] == 384
    assert 0.7 < profile["metrics"]["accuracy"] <= 1
    assert set(rows[0]["descriptors"]) >= {"characters", "words", "subword_share", "non_letter_share"}


def test_held_out_amazon_sentences_do_not_drift(amazon_run):
    report = monitor(amazon_run, "data=csv", f"data.path={amazon_run / 'amazon-heldout.csv'}")
    assert report["rows"] == 400 and report["status"] == "no_drift", report["reasons"]
    assert not report["retrain_recommended"]
    (window,) = report["windows"]
    # Within what chance gives 400 rows: the AUC lands either side of evidently's 0.55 with the
    # CPU's rounding (0.555 on an AVX2-only machine), inconclusive at most, never drift.
    embeddings = window["layers"]["embeddings"]
    assert not embeddings["drifted"] and embeddings["score"] <= embeddings["threshold"] < 0.6
    assert window["layers"]["performance"]["available"]


@pytest.mark.parametrize(
    ("domain", "layers_expected"), [("imdb", {"embeddings", "descriptors"}), ("yelp", {"embeddings"})]
)
def test_other_review_domains_drift(amazon_run, domain, layers_expected):
    """IMDB sentences are longer (descriptors drift too); Yelp sentences look like
    Amazon's on the surface and drift in the model's embeddings (docs/governance.md)."""
    report = monitor(amazon_run, "data=ecommerce_reviews", f"data.domain={domain}", "data.limit=300")
    assert report["drift_detected"] and report["status"] == "drift"
    layers = report["windows"][0]["layers"]
    assert layers["embeddings"]["score"] > layers["embeddings"]["threshold"] and layers["embeddings"]["p_value"] < 0.05
    assert {name for name, layer in layers.items() if layer["drifted"]} >= layers_expected
    assert report["severity"] == {1: "low", 2: "medium"}.get(len(report["windows"][0]["drifted_layers"]), "high")
    folder = amazon_run / "runs" / "amazon" / "reports"
    assert json.loads((folder / f"drift-{domain}_labelled.json").read_text())["status"] == "drift"
    page = (folder / f"drift-{domain}_labelled.html").read_text()
    assert "Drift detected" in page and ("Retraining is recommended" in page) == report["retrain_recommended"]
    assert "<script src=" not in (folder / f"drift-{domain}_labelled.evidently.html").read_text()


def test_windows_groups_and_the_bias_audit_on_a_drifted_batch(amazon_run, tmp_path):
    rows = domain_rows("imdb")[:250]
    batch = write_csv(
        tmp_path / "imdb-groups.csv",
        [(text, label, "ab"[i % 2]) for i, (text, label) in enumerate(rows)],
        header=("text", "label", "region"),
    )
    report = monitor(
        amazon_run,
        "data=csv",
        f"data.path={batch}",
        "data.sensitive_columns=[region]",
        "monitor.window=100",
        "monitor.min_rows=40",
    )
    assert [(w["start_row"], w["rows"]) for w in report["windows"]] == [(0, 100), (100, 100), (200, 50)]
    first = report["windows"][0]
    assert [(g["group"], g["rows"]) for g in first["groups"]] == [("a", 50), ("b", 50)]
    assert first["drift_detected"] and first["bias_audit"]["audit"] == "group_metrics"
    assert {g["group"] for g in first["bias_audit"]["groups"]} >= {"region=a", "region=b"}
    assert report["windows"][2]["groups"][0]["status"] == "insufficient_data"  # 25 rows < 40


def test_drift_fires_the_hook_and_the_cli_prints_the_verdict(amazon_run, capsys):
    seen = []

    class Pager:
        @hookimpl
        def tunewright_drift_detected(self, run, report):
            seen.append((run.run_id, report["name"], report["retrain_recommended"]))

    plugins = get_plugins()
    plugins.manager.register(Pager(), name="pager")
    try:
        code = main(
            [
                "monitor",
                f"run={amazon_run / 'runs' / 'amazon'}",
                "data=ecommerce_reviews",
                "data.domain=imdb",
                f"data.limit={IMDB_ROWS}",
                "monitor.name=imdb-sample",
            ]
        )
    finally:
        plugins.manager.unregister(name="pager")
    assert code == 0 and seen == [("amazon", "imdb-sample", True)]
    out = capsys.readouterr().out
    assert "verdict: DRIFT" in out and "drift-imdb-sample.html" in out


def test_unlabelled_and_tiny_batches(amazon_run, tmp_path):
    texts = [(text,) for text, _ in domain_rows("amazon")[TRAIN_ROWS:]]
    unlabelled = write_csv(tmp_path / "unlabelled.csv", texts, header=("text",))
    report = monitor(amazon_run, "data=csv", f"data.path={unlabelled}", "data.label_column=null")
    assert report["status"] == "no_drift" and not report["windows"][0]["layers"]["performance"]["available"]
    tiny = write_csv(tmp_path / "tiny.csv", texts[:12], header=("text",))
    report = monitor(amazon_run, "data=csv", f"data.path={tiny}", "data.label_column=null")
    assert report["status"] == "insufficient_data" and "12 rows" in report["reasons"][0]


def test_bad_batches_and_run_folders_fail_clearly(amazon_run, tmp_path):
    run = amazon_run / "runs" / "amazon"
    empty = write_csv(tmp_path / "empty.csv", [])
    with pytest.raises(DataError, match="empty.csv"):
        monitor(amazon_run, "data=csv", f"data.path={empty}")
    wrong = write_csv(tmp_path / "wrong.csv", [("great", "positive")], header=("body", "label"))
    with pytest.raises(DataError, match=r"wrong.csv: no column 'text'"):
        monitor(amazon_run, "data=csv", f"data.path={wrong}")
    with pytest.raises(ConfigError, match="data=<option>"):
        monitor_run(run, [], get_plugins())
    old = tmp_path / "old-run"
    shutil.copytree(run, old, ignore=shutil.ignore_patterns("drift_reference"))
    with pytest.raises(RunFolderError, match="no drift reference"):
        monitor_run(old, ["data=ecommerce_reviews"], get_plugins())


def test_retrain_trains_a_linked_run_on_the_old_data_plus_the_batch(amazon_run):
    (report,) = monitor_run(
        amazon_run / "runs" / "amazon",
        [
            "data=ecommerce_reviews",
            "data.domain=imdb",
            f"data.limit={IMDB_ROWS}",
            "monitor.name=imdb-retrain",
            "monitor.retrain=true",
        ],
        get_plugins(),
    )
    assert report["retrain_recommended"]
    new_id = report["retraining"]["run_id"]
    new = amazon_run / "runs" / new_id
    manifest = json.loads((new / "manifest.json").read_text())
    assert manifest["retrained_from"] == {
        "run_id": "amazon",
        "drift_report": "reports/drift-imdb-retrain.json",
        "rows_added": IMDB_ROWS,
    }
    assert new_id in json.loads((amazon_run / "runs" / "amazon" / "manifest.json").read_text())["retrained_as"]
    rows = (amazon_run / "runs" / "amazon" / "retrain" / f"{new_id}.jsonl").read_text().splitlines()
    assert len(rows) == TRAIN_ROWS + IMDB_ROWS
    assert manifest["data_sources"][0]["path"].endswith(f"retrain/{new_id}.jsonl")
    stubs = [
        p
        for p in (amazon_run / "runs").iterdir()
        if p.name not in ("amazon", new_id) and not (p / "config.yaml").exists()
    ]
    assert stubs == []  # the data lives with the old run; nothing half-made is left beside the new one
    results = json.loads((new / "results.json").read_text())
    assert sum(results["data"].values()) > TRAIN_ROWS  # after deduplication, still more than the old data alone
    assert (new / "model").is_dir() and report["retraining"]["test"] == results["test"]


def test_a_labelled_batch_of_one_class_is_monitored(amazon_run, tmp_path):
    positives = [(text, label) for text, label in domain_rows("amazon")[TRAIN_ROWS:] if label == "positive"]
    report = monitor(amazon_run, "data=csv", f"data.path={write_csv(tmp_path / 'praise.csv', positives)}")
    assert report["rows"] == len(positives) and report["windows"][0]["layers"]["performance"]["available"]


def test_drift_rows_say_what_decided_them_and_verdicts_are_shown_once():
    from tunewright.governance.monitors.drift_report import outcome, render_html

    column = {"score": 0.24, "threshold": 0.1, "p_value": 0.2, "p_threshold": 0.008, "drifted": False}
    assert outcome(column) == "no drift: larger than the threshold, but not significant (p ≥ 0.008)"
    assert (
        outcome({**column, "score": 0.05, "p_value": 0.001}) == "no drift: significant, but smaller than the threshold"
    )
    assert (
        outcome({**column, "p_value": 0.001, "drifted": True})
        == "drift: larger than the threshold and significant (p < 0.008)"
    )
    performance = {
        "available": True,
        "score": 0.111,
        "threshold": 0.05,
        "p_value": 0.01,
        "p_threshold": 0.05,
        "drifted": True,
        "reference": {"accuracy": 0.9},
        "current": {"accuracy": 0.789},
    }
    assert outcome(performance) == "drift: accuracy 0.900 → 0.789, a significant drop beyond 0.05"
    served = {**performance, "current": {"accuracy": 0.789, "labelled_rows": 19}}  # feedback labelled 19 rows
    assert (
        outcome(served)
        == "drift: accuracy 0.900 → 0.789 on the batch's 19 labelled rows, a significant drop beyond 0.05"
    )

    window = {
        "index": 0,
        "start_row": 1,
        "rows": 50,
        "status": "drift",
        "severity": "high",
        "reasons": ["performance: accuracy fell by 0.111"],
        "layers": {"performance": performance},
    }
    report = {
        "name": "b",
        "run_id": "r",
        "rows": 50,
        "reference": {"rows": 200},
        "drift_detected": True,
        "status": "drift",
        "severity": "high",
        "retrain_recommended": True,
        "reasons": window["reasons"],
        "windows": [window],
    }
    page = render_html(report, [])
    assert page.count("accuracy fell by 0.111") == 1 and "accuracy 0.900 → 0.789" in page
