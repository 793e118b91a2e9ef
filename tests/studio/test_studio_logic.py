"""The studio without a browser: forms → overrides, uploads, data checks, run folder → views."""

from __future__ import annotations

import dataclasses
import json
import shlex
import time
import zipfile
from pathlib import Path

import pytest
from conftest import free_port

from tunewright.cli import main
from tunewright.errors import ConfigError, DataError
from tunewright.schema import TrainerConfig
from tunewright.schema_help import field_comments
from tunewright.studio import data_check, views
from tunewright.studio.actions import Studio
from tunewright.studio.forms import TrainForm, extra_overrides
from tunewright.studio.workspace import UploadError, Workspace, safe_name

REVIEWS = "review,sentiment,region\n" + "".join(
    f'"{text} number {i}",{label},{"north" if i % 2 else "south"}\n'
    for i in range(40)
    for text, label in [("Great phone, works well", "positive"), ("Broke after a day, awful", "negative")]
)


@pytest.fixture
def studio(tmp_path):
    return Studio(Workspace(tmp_path / "workspace"), max_upload_mb=1)


def uploaded(studio: Studio, tmp_path: Path, name: str, content: str | bytes) -> str:
    received = tmp_path / "received"
    received.write_bytes(content.encode() if isinstance(content, str) else content)
    return studio.upload(received, name)


def test_a_form_is_the_command_line_it_shows(studio, tmp_path):
    entry = uploaded(studio, tmp_path, "my reviews.csv", REVIEWS)
    assert entry == "upload: my_reviews.csv"
    form = TrainForm(
        data=entry,
        model="bert",
        method="ia3",
        text_column="review",
        label_column="sentiment",
        sensitive_columns=["region"],
        max_epochs=2,
        learning_rate=3e-4,
        limit=50,
        extra="# a comment\n\nmodel.max_length=32\n",
    )
    uploads, runs = studio.workspace.uploads, studio.workspace.runs
    overrides = form.overrides(studio.workspace, "r1")
    assert overrides == [
        "model=bert",
        "method=ia3",
        "data=csv",
        f"data.path={uploads / 'my_reviews.csv'}",
        "data.text_column=review",
        "data.label_column=sentiment",
        "data.sensitive_columns=[region]",
        "data.limit=50",
        "trainer.max_epochs=2",
        "trainer.learning_rate=0.0003",
        "model.max_length=32",
        "trainer.progress_bar=false",
        f"paths.runs_dir={runs}",
        "paths.run_id=r1",
    ]
    assert shlex.split(studio.command(form, "r1")) == ["tunewright", "train", *overrides]
    pack = TrainForm(data="pack: banking77").overrides(studio.workspace, "r2")
    assert pack[:3] == ["model=minilm", "method=lora", "data=banking77"]


def test_extra_overrides_refuse_a_line_that_is_not_key_value():
    with pytest.raises(ConfigError, match=r"line 2 \('trainer.max_epochs 3'\) is not key=value"):
        extra_overrides("method.r=4\ntrainer.max_epochs 3")


@pytest.mark.parametrize(
    "line", ["data.path=/etc/passwd", "paths.runs_dir=elsewhere", "audit.probes=~/probes.txt", "model.name_or_path=x"]
)
def test_the_browser_cannot_name_a_file_on_the_server(line):
    with pytest.raises(ConfigError, match="names a file or folder on the server"):
        extra_overrides(line)


def test_a_checkpoint_is_a_workspace_model_or_a_hub_id(studio, tiny_bert):
    import shutil

    shutil.copytree(tiny_bert, studio.workspace.models / "tiny-bert")
    form = TrainForm(data="pack: banking77", model="bert")
    for given, expected in [
        ("tiny-bert", str(studio.workspace.models / "tiny-bert")),
        ("google-bert/bert-base-uncased", "google-bert/bert-base-uncased"),
    ]:
        form.checkpoint = given
        assert f"model.name_or_path={expected}" in form.overrides(studio.workspace, "r")
    for hostile in (str(tiny_bert), "../models/tiny-bert", "~/models"):
        form.checkpoint = hostile
        with pytest.raises(ConfigError, match="is neither a model folder of"):
            form.overrides(studio.workspace, "r")


def test_a_misspelt_key_in_the_form_is_refused_before_anything_starts(studio, tmp_path):
    form = TrainForm(data=uploaded(studio, tmp_path, "r.csv", REVIEWS), extra="trainer.max_epoch=2")
    with pytest.raises(ConfigError, match="max_epoch"):
        studio.start_training(form, "never")
    assert not (studio.workspace.runs / "never").exists() and studio.jobs.get("never") is None


def test_uploads_keep_only_a_safe_name_and_respect_the_limit(studio, tmp_path):
    assert safe_name("../../etc/passwd.csv") == "passwd.csv"
    assert safe_name("C:\\Users\\x\\data set.csv") == "data_set.csv"
    assert safe_name("..hidden.csv") == "hidden.csv"
    first = uploaded(studio, tmp_path, "../../outside.csv", REVIEWS)
    second = uploaded(studio, tmp_path, "outside.csv", REVIEWS)
    assert (first, second) == ("upload: outside.csv", "upload: outside-2.csv")  # nothing overwritten
    assert sorted(p.name for p in studio.workspace.uploads.iterdir()) == ["outside-2.csv", "outside.csv"]
    with pytest.raises(UploadError, match=r"big.csv: 1.5 MB is over the upload limit of 1 MB \(studio.max_upload_mb\)"):
        uploaded(studio, tmp_path, "big.csv", "x" * (3 * 2**19))
    with pytest.raises(UploadError, match=r"notes.exe: not a data file"):
        uploaded(studio, tmp_path, "notes.exe", "MZ")
    with pytest.raises(UploadError, match="is not an uploaded file"):
        studio.workspace.upload_path("../runs")


def test_a_zip_of_image_folders_unpacks_and_one_escaping_its_folder_is_refused(studio, tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as bundle:
        for label in ("cat", "dog"):
            for i in range(3):
                bundle.writestr(f"pets/{label}/{i}.png", b"not really a png")
    entry = studio.upload(good, "pets.zip")
    folder = studio.workspace.upload_path(entry.removeprefix("upload: "))
    assert sorted(p.name for p in folder.iterdir()) == ["cat", "dog"]
    shown = studio.preview(entry)
    assert (shown.kind, shown.rows, shown.total_rows) == ("image_folder", [["cat", 3], ["dog", 3]], 6)

    hostile = tmp_path / "hostile.zip"
    with zipfile.ZipFile(hostile, "w") as bundle:
        bundle.writestr("cat/1.png", b"x")
        bundle.writestr("../../escaped.txt", b"x")
    with pytest.raises(UploadError, match=r"entry '../../escaped.txt' points outside the archive"):
        studio.upload(hostile, "hostile.zip")
    assert not (studio.workspace.root.parent / "escaped.txt").exists()
    assert [p.name for p in studio.workspace.uploads.iterdir()] == ["pets"]


def test_the_preview_maps_columns_and_a_malformed_file_names_its_row(studio, tmp_path):
    shown = studio.preview(uploaded(studio, tmp_path, "r.csv", REVIEWS))
    assert shown.columns == ["review", "sentiment", "region"] and shown.total_rows == 80
    assert shown.rows[0] == ["Great phone, works well number 0", "positive", "south"]
    assert data_check.guess_column(shown.columns, "label", "sentiment") == "sentiment"
    broken = uploaded(studio, tmp_path, "broken.csv", 'text,label\n"fine",a\n"never closed,b\n')
    with pytest.raises(DataError, match=r"broken.csv, row 3: a quote opened in this row is never closed"):
        studio.preview(broken)
    assert data_check.explain_failure(DataError("x.csv, row 3: bad")) == "x.csv, row 3: bad"


def test_the_data_card_is_the_one_the_run_would_write(studio, tmp_path):
    entry = uploaded(studio, tmp_path, "r.csv", REVIEWS + '"Great phone, works well number 0",positive,south\n')
    form = TrainForm(data=entry, text_column="review", label_column="sentiment", sensitive_columns=["region"])
    card = studio.data_card(form)
    assert "| train | 56 |" in card  # 81 rows, one duplicate dropped, 70/10/20 of the other 80
    assert "train: deduplicate: 57 → 56 rows" in card and "row 2: near duplicate of row 82" in card
    assert "`region`: present in 100% of train" in card
    missing = TrainForm(data=entry, text_column="body", label_column="sentiment")
    with pytest.raises(DataError, match=r"r.csv: no column 'body' \(data.text_column\)"):
        studio.data_card(missing)


def run_folder(root: Path, predictions: list[tuple[str, str]], bias: dict | None) -> Path:
    folder = root / "runs" / "r1"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(
        "model: {kind: sequence_classification}\nmethod: {kind: lora}\ndata: {kind: csv}\n"
    )
    (folder / "results.json").write_text(json.dumps({"test": {"accuracy": 0.75, "f1_macro": 0.7}}))
    rows = [{"text": "t", "label": true, "prediction": {"label": guess}} for true, guess in predictions]
    (folder / "test_predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if bias is not None:
        (folder / "reports").mkdir()
        (folder / "reports" / "bias.json").write_text(json.dumps(bias))
    return folder


def test_results_read_the_confusion_matrix_and_scores_from_the_predictions(tmp_path):
    folder = run_folder(tmp_path, [("a", "a"), ("a", "b"), ("b", "b"), ("b", "b")], None)
    labels, matrix = views.confusion(folder)
    assert labels == ["a", "b"] and matrix == [[1, 1], [0, 2]]
    table = views.per_class_markdown(labels, matrix)
    assert "| a | 1.000 | 0.500 | 0.667 | 2 |" in table and "| b | 0.667 | 1.000 | 0.800 | 2 |" in table
    assert views.bias_markdown(folder).startswith("No bias audit ran")
    assert views.history(tmp_path / "runs") == [
        ["r1", "sequence_classification", "lora", "csv", "finished", 0.75, 0.7, "not audited"]
    ]


def test_every_user_string_in_a_view_is_escaped(tmp_path):
    hostile = "<img src=x onerror=alert(1)>"
    bias = {
        "audits": {"group_metrics": {"verdict": "fail", "reasons": [f"group {hostile} gap 0.4"]}},
        "release": {"allowed": False, "reasons": [f"group_metrics failed for {hostile}"]},
    }
    folder = run_folder(tmp_path, [(hostile, hostile), ("b", hostile)], bias)
    labels, matrix = views.confusion(folder)
    for shown in (
        views.confusion_html(labels, matrix),
        views.per_class_markdown(labels, matrix),
        views.bias_markdown(folder),
    ):
        assert "<img" not in shown and "&lt;img" in shown
    assert "Release is blocked" in views.bias_markdown(folder)


def test_progress_reads_the_run_as_it_goes(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    assert views.progress(folder, running=True).state == "training"
    assert views.progress(folder, running=False).state == "not started"
    assert views.progress(folder, running=False, failed=True).state == "failed"
    events = [
        {"event": "train", "step": s, "loss": 1.0 / s, "epoch": 1, "total_steps": 40, "tokens_per_second": 900.0}
        for s in (10, 20)
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events) + '{"event": "tra')
    state = views.progress(folder, running=True)
    assert (state.step, state.total_steps, state.losses) == (20, 40, [(10, 0.1), (20, 0.05)])
    assert state.eta_seconds(elapsed_s=30.0) == pytest.approx(30.0)
    assert state.sentence(30.0) == "Training: step 20 of 40, epoch 1, loss 0.0500, 900 tokens/s, about 30 s left."
    assert views.progress(folder, running=False).state == "stopped"


def test_knob_help_is_the_comment_the_schema_carries():
    comments = field_comments(TrainerConfig)
    assert comments["batch_size"] == "examples per micro-batch per process; larger: more memory"
    assert comments["learning_rate"].startswith("null: the method's own default")
    assert "max_epochs" not in comments  # no comment, no invented help


def test_choices_come_from_the_config_groups_with_what_each_is(studio):
    models = {choice.value: choice.label for choice in studio.choices("model")}
    assert models["minilm"].startswith("minilm: all-MiniLM-L6-v2")
    assert "sequence_classification" in models
    methods = {choice.value: choice.label for choice in studio.choices("method")}
    assert methods["lora"].startswith("lora: ")
    knobs = studio.method_knobs("lora")
    assert "- `method.r=8`: adapter rank; higher: more trainable weights, more memory" in knobs
    assert "`method.use_dora=false`" in knobs and studio.method_knobs("full") == ""
    packs = [entry for entry in studio.data_choices() if entry.startswith("pack: ")]
    assert "pack: banking77" in packs and "pack: csv" not in packs


def test_a_job_is_a_recorded_command_and_one_run_trains_once(studio):
    job = studio.jobs.start("sleeper", "plugins", [])
    job.process.wait(60)
    assert (
        job.process.returncode == 0
        and not job.failed
        and "tunewright.plugins.methods" in studio.jobs.log_tail("sleeper", 200)
    )
    record = json.loads((studio.workspace.logs / "sleeper.json").read_text())
    assert record["line"] == "tunewright plugins" and studio.jobs.recorded_args("sleeper") == ("plugins", [])
    port = free_port()  # so the app it starts could listen
    long = studio.jobs.start(
        "long", "studio", [f"studio.workspace={studio.workspace.root / 'inner'}", f"studio.port={port}"]
    )
    with pytest.raises(RuntimeError, match="long is already running"):
        studio.jobs.start("long", "plugins", [])
    assert studio.stop("long") and not long.running and not long.failed  # stopped, not failed
    with pytest.raises(ValueError, match="letters, digits"):
        studio.jobs.start("../x", "plugins", [])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["studio.host=0.0.0.0"], "studio.host=0.0.0.0: the app would be open to the network without a password"),
        (["studio.auth=true"], "studio.auth=true: set the password in $TUNEWRIGHT_STUDIO_PASSWORD first"),
        (["studio.prot=1"], "studio.prot: unknown key; valid keys: auth, host, max_upload_mb, port, workspace"),
        (["port=1"], "studio: 'port=1' is not studio.<key>=..."),
    ],
)
def test_the_studio_command_refuses_unsafe_or_unknown_settings(args, message, capsys, monkeypatch):
    monkeypatch.delenv("TUNEWRIGHT_STUDIO_PASSWORD", raising=False)
    assert main(["studio", *args]) == 2
    assert message in capsys.readouterr().err


def test_the_studio_command_says_how_to_install_gradio_when_it_is_missing(capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    assert main(["studio"]) == 2
    assert "studio needs gradio: pip install 'tunewright[studio]' (scripts/setup.sh does)" in capsys.readouterr().err


@pytest.mark.slow
def test_stop_then_resume_finishes_the_run_from_its_checkpoint(studio, tmp_path, tiny_bert):
    """Stop kills the training process; Resume runs the same command, which continues
    from the newest checkpoint rather than starting over."""
    import shutil

    shutil.copytree(tiny_bert, studio.workspace.models / "tiny-bert")
    form = TrainForm(
        data=uploaded(studio, tmp_path, "r.csv", REVIEWS),
        model="bert",
        checkpoint="tiny-bert",
        text_column="review",
        label_column="sentiment",
        max_epochs=8,
        batch_size=4,
        extra="model.max_length=32\ntrainer.eval_every_n_steps=5\ntrainer.log_every_n_steps=1\naudit=none",
    )
    run = studio.start_training(form, "stopped-run")
    checkpoints = studio.workspace.runs / run / "checkpoints"
    deadline = time.time() + 180
    while not list(checkpoints.glob("step-*")) and time.time() < deadline:
        assert studio.jobs.get(run).running, studio.jobs.log_tail(run)
        time.sleep(0.2)
    assert studio.stop(run)
    stopped = studio.progress(run)
    assert stopped.state == "stopped" and 0 < stopped.step < stopped.total_steps
    studio.resume(run)
    assert studio.jobs.get(run).process.wait(300) == 0, studio.jobs.log_tail(run)
    assert studio.jobs.log_tail(run, 400).count("$ tunewright train") == 2
    results = json.loads((studio.workspace.runs / run / "results.json").read_text())
    assert 0 < results["train"]["resumed_from_step"] <= stopped.step
    assert studio.progress(run).state == "finished"
    job, target = studio.start_export(run, "Hugging Face directory")
    assert studio.jobs.get(job).process.wait(120) != 0 and not target.exists()  # audit=none: never cleared
    assert "release blocked: no bias audit ran (audit=none)" in studio.jobs.log_tail(job, 1)
    serving = studio.start_serving(run, 8123)  # refused for the same reason, before it listens
    assert studio.jobs.get(serving).process.wait(120) != 0 and studio.live_drift(8123) is None
    assert "release blocked" in studio.jobs.log_tail(serving, 1)

    batch = uploaded(studio, tmp_path, "batch.csv", "review\n" + "".join(f"Fine phone {i}\n" for i in range(40)))
    job = studio.start_monitoring(run, batch)  # the run's text column, no labels in the batch
    assert studio.jobs.get(job).process.wait(300) == 0, studio.jobs.log_tail(job)
    assert "batch batch: 40 rows in 1 window(s)" in studio.jobs.log_tail(job)

    quick = dataclasses.replace(form, max_epochs=1, extra="model.max_length=32\naudit=none")
    job = studio.start_tuning(quick, trials=1, timeout="")
    assert studio.jobs.get(job).process.wait(300) == 0, studio.jobs.log_tail(job)
    (study,) = studio.workspace.runs.glob("tune-*")
    assert len(json.loads((study / "study.json").read_text())["trials"]) == 1
    with pytest.raises(ConfigError, match="the studio did not start this run"):
        studio.resume("someone-elses-run")
