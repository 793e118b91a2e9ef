"""The studio's web page (Gradio): six tabs that fill in forms and show run folders.

Every handler here converts between Gradio's values and :class:`.actions.Studio`'s; what
the buttons do is decided there. Errors are shown in the page, next to the field or
button they concern, as the one line the CLI would print.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from tunewright.schema import TrainerConfig
from tunewright.schema_help import field_comments
from tunewright.studio import views
from tunewright.studio.actions import EXPORT_FORMATS, Studio
from tunewright.studio.data_check import explain_failure, guess_column
from tunewright.studio.forms import TrainForm

POLL_SECONDS = 2.0
CSS = """
.error textarea, .error p {color:#b42318}
table.confusion td, table.confusion th {padding:.3rem .6rem; text-align:center; border:1px solid #d0d7de}
"""


def _error(error: Exception) -> str:
    return f"⚠️ {explain_failure(error)}"


def _safe(handler):
    """Run ``handler``; an error becomes the message its last output shows."""

    @functools.wraps(handler)
    def wrapper(*args):
        try:
            return handler(*args)
        except Exception as error:  # shown in the page: the app itself stays up
            return _failure(handler, error)

    return wrapper


def _failure(handler, error: Exception):
    import gradio as gr

    count = getattr(handler, "outputs", 1)
    message = _error(error)
    return message if count == 1 else tuple([gr.skip()] * (count - 1) + [message])


def _outputs(count: int):
    def mark(handler):
        handler.outputs = count
        return handler

    return mark


def build(studio: Studio):
    """The page for ``studio``."""
    import gradio as gr
    import pandas as pd

    help_of = field_comments(TrainerConfig)
    models = [(c.label, c.value) for c in studio.choices("model")]
    methods = [(c.label, c.value) for c in studio.choices("method")]

    with gr.Blocks(title="tunewright studio") as page:
        gr.Markdown(
            "# tunewright studio\nUpload data, train, audit and serve a model. Every step is a normal "
            "`tunewright` command on a run folder under this workspace; the command is shown so you can repeat it."
        )
        run_id = gr.State("")

        # -------------------------------------------------------------- 1. data
        with gr.Tab("1. Data", id="data"):
            with gr.Row():
                upload = gr.File(label="Upload CSV, JSON lines, Parquet or a zip of image folders", elem_id="upload")
                data = gr.Dropdown(studio.data_choices(), label="Data to train on", elem_id="data-choice")
            upload_error = gr.Markdown(elem_id="upload-error", elem_classes="error")
            table = gr.Dataframe(label="Preview", interactive=False, elem_id="preview")
            with gr.Row():
                text_column = gr.Dropdown([], label="Text column", elem_id="text-column")
                label_column = gr.Dropdown([], label="Label column", elem_id="label-column")
                pair_column = gr.Dropdown([], label="Second text (pairs, optional)", elem_id="pair-column")
                image_column = gr.Dropdown([], label="Image path column (optional)", elem_id="image-column")
            sensitive = gr.Dropdown(
                [], multiselect=True, label="Sensitive columns: kept for the bias audit, never fed to the model"
            )
            check = gr.Button("Check the data", elem_id="check-data")
            data_error = gr.Markdown(elem_id="data-error", elem_classes="error")
            card = gr.Markdown(elem_id="data-card")

        # -------------------------------------------------------------- 2. configure
        with gr.Tab("2. Configure", id="configure"):
            with gr.Row():
                model = gr.Dropdown(models, value="minilm", label="Model", elem_id="model")
                method = gr.Dropdown(methods, value="lora", label="Method", elem_id="method")
            method_knobs = gr.Markdown(studio.method_knobs("lora"), elem_id="method-knobs")
            with gr.Row():
                epochs = gr.Number(3, precision=0, minimum=1, label="Epochs", info="passes over the training data")
                learning_rate = gr.Textbox("", label="Learning rate", info=help_of.get("learning_rate"))
                batch_size = gr.Number(16, precision=0, minimum=1, label="Batch size", info=help_of.get("batch_size"))
                limit = gr.Number(0, precision=0, minimum=0, label="Rows to use (0: all)", elem_id="limit")
            with gr.Accordion("Advanced", open=False):
                checkpoint = gr.Dropdown(
                    ["", *studio.workspace.checkpoints()],
                    value="",
                    allow_custom_value=True,
                    label=f"Checkpoint: a folder of {studio.workspace.models}, or a hub id (blank: the model's default)",
                    elem_id="checkpoint",
                )
                extra = gr.Textbox("", lines=3, label="More overrides, key=value per line", elem_id="extra")
            command = gr.Code(
                label="The same run from a terminal",
                language="shell",
                wrap_lines=True,
                show_line_numbers=False,
                elem_id="command",
            )

        # -------------------------------------------------------------- 3. train
        with gr.Tab("3. Train", id="train"):
            with gr.Row():
                start = gr.Button("Start training", variant="primary", elem_id="start")
                stop = gr.Button("Stop", elem_id="stop")
                resume = gr.Button("Resume", elem_id="resume")
            train_error = gr.Markdown(elem_id="train-error", elem_classes="error")
            status = gr.Markdown("Not started.", elem_id="train-status")
            loss_plot = gr.LinePlot(x="step", y="loss", label="Training loss")
            log = gr.Textbox(label="Command output", lines=8, max_lines=8, elem_id="train-log")

        # -------------------------------------------------------------- 4. results
        with gr.Tab("4. Results", id="results"):
            result_run = gr.Dropdown(studio.runs(), label="Run", elem_id="result-run", allow_custom_value=True)
            metrics = gr.Markdown(elem_id="metrics")
            with gr.Row():
                matrix = gr.HTML(elem_id="confusion")
                per_class = gr.Markdown(elem_id="per-class")
            bias = gr.Markdown(elem_id="bias")
            with gr.Accordion("Model card", open=False):
                model_card = gr.Markdown(elem_id="model-card")
            with gr.Row():
                try_text = gr.Textbox(label="Try the model on your own text", elem_id="try-text")
                try_button = gr.Button("Predict", elem_id="try")
            try_output = gr.Label(label="Prediction", elem_id="try-output")

        # -------------------------------------------------------------- 5. operate
        with gr.Tab("5. Tune, serve, monitor, export", id="operate"):
            gr.Markdown("### Tune: a hyper-parameter search on the data and model configured above")
            with gr.Row():
                trials = gr.Number(8, precision=0, minimum=1, label="Trials")
                budget = gr.Textbox("30m", label="Time budget (s, m or h)")
                tune = gr.Button("Start the search", elem_id="tune")
            gr.Markdown("### Serve, monitor and export the run chosen on the Results tab")
            with gr.Row():
                port = gr.Number(8000, precision=0, minimum=1, maximum=65535, label="Port (127.0.0.1)")
                serve_start = gr.Button("Start serving", elem_id="serve-start")
                serve_stop = gr.Button("Stop serving", elem_id="serve-stop")
            with gr.Row():
                batch = gr.Dropdown([], label="New batch to monitor (upload it on the Data tab)")
                monitor = gr.Button("Check for drift", elem_id="monitor")
            with gr.Row():
                export_kind = gr.Dropdown(list(EXPORT_FORMATS), value="Hugging Face directory", label="Export as")
                export = gr.Button("Export", elem_id="export")
            download = gr.File(label="Download", interactive=False, elem_id="download")
            operate_error = gr.Markdown(elem_id="operate-error", elem_classes="error")
            jobs_log = gr.Textbox(label="Output of the last command", lines=10, max_lines=10, elem_id="jobs-log")
            last_job = gr.State("")

        # -------------------------------------------------------------- 6. history
        with gr.Tab("6. History", id="history"):
            refresh = gr.Button("Refresh", elem_id="refresh")
            runs_table = gr.Dataframe(headers=views.HISTORY_COLUMNS, interactive=False, elem_id="history")
            compare = gr.Dropdown([], multiselect=True, label="Compare runs side by side")
            comparison = gr.Markdown(elem_id="comparison")

        form_inputs = [
            data,
            model,
            method,
            text_column,
            label_column,
            pair_column,
            image_column,
            sensitive,
            epochs,
            learning_rate,
            batch_size,
            limit,
            checkpoint,
            extra,
        ]

        # -------------------------------------------------------------- handlers

        @_safe
        @_outputs(3)
        def on_upload(file):
            if file is None:
                return gr.skip(), gr.skip(), ""
            entry = studio.upload(Path(file), Path(file).name)
            # the file now lives in the workspace: the box is cleared for the next upload
            return None, gr.update(choices=studio.data_choices(), value=entry), ""

        def on_data(choice):
            empty = gr.update(choices=[], value=None)
            try:
                shown = studio.preview(choice) if choice else None
            except Exception as error:  # a malformed file: nothing of it is mapped, the error says where
                return None, empty, empty, empty, empty, gr.update(choices=[], value=[]), gr.skip(), _error(error)
            if shown is None:
                return None, empty, empty, empty, empty, gr.update(choices=[], value=[]), gr.skip(), ""
            columns = shown.columns
            frame = pd.DataFrame(shown.rows, columns=columns)
            pick = lambda *names: gr.update(choices=columns, value=guess_column(columns, *names))  # noqa: E731
            uploads = [c for c in studio.data_choices() if c != choice]
            return (
                frame,
                pick("text", "sentence", "review", "body", "question"),
                pick("label", "labels", "sentiment", "intent", "category", "class", "stars"),
                pick("text_pair", "pair", "hypothesis", "second"),
                pick("image", "image_path", "path", "file"),
                gr.update(choices=columns, value=[]),
                gr.update(choices=[u for u in uploads if u.startswith("upload: ")]),
                "",
            )

        def form_of(*values) -> TrainForm:
            (data_, model_, method_, text_, label_, pair_, image_, sensitive_) = values[:8]
            epochs_, rate_, batch_, limit_, checkpoint_, extra_ = values[8:]
            return TrainForm(
                data=data_ or "",
                model=model_,
                method=method_,
                text_column=text_ or None,
                label_column=label_ or None,
                text_pair_column=pair_ or None,
                image_column=image_ or None,
                sensitive_columns=list(sensitive_ or []),
                max_epochs=int(epochs_) if epochs_ else None,
                learning_rate=_float(rate_, "Learning rate"),
                batch_size=int(batch_) if batch_ else None,
                limit=int(limit_) if limit_ else None,
                checkpoint=(checkpoint_ or "").strip() or None,
                extra=extra_ or "",
            )

        @_safe
        @_outputs(2)
        def on_check(*values):
            return studio.data_card(form_of(*values)), ""

        @_safe
        def on_form(run, *values):
            return studio.command(form_of(*values), run or "<run id>")

        @_safe
        @_outputs(2)
        def on_start(*values):
            started = studio.start_training(form_of(*values))
            return started, f"Started run {started}."

        @_safe
        def on_stop(run):
            return (
                f"Stopped {run}: Resume goes on from its last checkpoint."
                if studio.stop(run)
                else "Nothing is running."
            )

        @_safe
        def on_resume(run):
            return f"Resumed {studio.resume(run)}."

        def on_tick(run):
            if not run:
                return gr.skip(), gr.skip(), gr.skip()
            state = studio.progress(run)
            frame = pd.DataFrame(state.losses, columns=["step", "loss"])
            sentence = state.sentence(studio.elapsed(run))
            if state.state == "failed":  # the command's own one-line error says why
                sentence += " " + studio.jobs.log_tail(run, 1)
            return sentence, frame, studio.jobs.log_tail(run)

        @_safe
        @_outputs(6)
        def on_result(run):
            if not run:
                return "", "", "", "", "", ""
            path = studio.run_path(run)
            results = views.read_json(path / "results.json")
            if results is None:
                return "This run has no results yet.", "", "", "", "", ""
            table = views.confusion(path)
            return (
                views.metrics_markdown(results),
                views.confusion_html(*table) if table else "",
                views.per_class_markdown(*table) if table else "",
                views.bias_markdown(path),
                views.model_card(path),
                "",
            )

        @_safe
        @_outputs(2)
        def on_try(run, text):
            return studio.try_model(run, text), ""

        @_safe
        @_outputs(2)
        def on_tune(trials_, budget_, *values):
            return studio.start_tuning(form_of(*values), int(trials_), budget_.strip()), ""

        @_safe
        @_outputs(2)
        def on_serve(run, port_):
            return studio.start_serving(run, int(port_)), ""

        @_safe
        @_outputs(2)
        def on_serve_stop(run):
            studio.stop(f"serve-{run}")
            return f"serve-{run}", ""

        @_safe
        @_outputs(2)
        def on_monitor(run, batch_):
            return studio.start_monitoring(run, batch_ or ""), ""

        @_safe
        @_outputs(3)
        def on_export(run, kind):
            name, target = studio.start_export(run, kind)
            studio.jobs.get(name).process.wait()
            if not target.is_dir():
                return name, None, _error(RuntimeError(studio.jobs.log_tail(name, 1)))
            return name, str(studio.archive(target)), ""

        def on_job_tick(name, port_):
            if not name:
                return gr.skip()
            text = studio.jobs.log_tail(name)
            if name.startswith("serve-"):
                drift = studio.live_drift(int(port_))
                text += "\n\nlive monitoring: " + ("service not up" if drift is None else str(drift))
            return text

        def on_history():
            rows = views.history(studio.workspace.runs)
            return pd.DataFrame(rows, columns=views.HISTORY_COLUMNS), gr.update(choices=[r[0] for r in rows])

        @_safe
        def on_compare(names):
            return views.comparison_markdown(studio.workspace.runs, list(names or []))

        # -------------------------------------------------------------- wiring

        mapping = [table, text_column, label_column, pair_column, image_column, sensitive, batch, data_error]
        upload.upload(on_upload, upload, [upload, data, upload_error])
        data.change(on_data, data, mapping)
        check.click(on_check, form_inputs, [card, data_error])
        for component in form_inputs:
            component.change(on_form, [run_id, *form_inputs], command)
        start.click(on_start, form_inputs, [run_id, train_error])
        stop.click(on_stop, run_id, train_error)
        resume.click(on_resume, run_id, train_error)
        run_id.change(on_form, [run_id, *form_inputs], command)
        method.change(studio.method_knobs, method, method_knobs)
        timer = gr.Timer(POLL_SECONDS)
        timer.tick(on_tick, run_id, [status, loss_plot, log])
        run_id.change(lambda run: gr.update(choices=studio.runs(), value=run), run_id, result_run)
        result_run.change(on_result, result_run, [metrics, matrix, per_class, bias, model_card, train_error])
        status.change(on_result, result_run, [metrics, matrix, per_class, bias, model_card, train_error])
        try_button.click(on_try, [result_run, try_text], [try_output, train_error])
        tune.click(on_tune, [trials, budget, *form_inputs], [last_job, operate_error])
        serve_start.click(on_serve, [result_run, port], [last_job, operate_error])
        serve_stop.click(on_serve_stop, result_run, [last_job, operate_error])
        monitor.click(on_monitor, [result_run, batch], [last_job, operate_error])
        export.click(on_export, [result_run, export_kind], [last_job, download, operate_error])
        timer.tick(on_job_tick, [last_job, port], jobs_log)
        refresh.click(on_history, None, [runs_table, compare])
        page.load(on_history, None, [runs_table, compare])
        page.load(lambda: gr.update(choices=["", *studio.workspace.checkpoints()]), None, checkpoint)
        compare.change(on_compare, compare, comparison)
    return page


def _float(text: str, name: str) -> float | None:
    from tunewright.errors import ConfigError

    text = (text or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not a number (for example 2e-4)") from None


def launch(studio: Studio, host: str, port: int, auth: tuple[str, str] | None, block: bool = True) -> Any:
    """Serve the page; returns the Gradio app (``block=False``: without waiting)."""
    page = build(studio)
    page.queue(default_concurrency_limit=4)
    return page.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        max_file_size=f"{int(studio.max_upload_mb * 1024)}kb",
        allowed_paths=[str(studio.workspace.root / "exports")],
        prevent_thread_lock=not block,
        show_error=False,
        quiet=True,
        css=CSS,
    )
