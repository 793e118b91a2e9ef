"""``tunewright serve run=<folder> [run=<folder> ...]``: run folders as an HTTP service.

FastAPI on uvicorn. Each run is served under its folder's name; every endpoint works
from the run's task through its :class:`~tunewright.predictor.Predictor` (a label with
probabilities, tags per word, generated text: whatever the task answers), so the
server knows no task by name. Concurrent requests are batched (:mod:`.batcher`), every
answered input is appended to the run's traffic log (:mod:`.traffic_log`) before its
response is sent, and ``tunewright monitor run=<folder> data=served`` judges that
traffic for drift like any batch.

Endpoints::

    GET  /health/live  /health/ready          ready after a warm-up forward pass
    GET  /metrics                              Prometheus: requests, latency, batch sizes, queue, labels
    GET  /v1/models                            the runs served, their task and labels
    POST /v1/predict      {"inputs": [...], "model": "<run>"}, or a form: -F inputs=@photo.png
    POST /v1/models/<run>/predict {"inputs": [...]}
    POST /v1/chat/completions  OpenAI's chat (streamed with "stream": true), for a run that
                               generates; a vision-language run's first user message holds
                               an image_url content part, a base64 data: URL
    POST /v1/completions       OpenAI's completions, for a run that generates from text
    POST /v1/feedback     {"request_id": "...", "label": "..."}   a true label for a served input
    GET  /docs                                 the OpenAPI docs

A run whose release is blocked is served only with ``override="<reason>"`` (recorded
in its manifest, as for export). The service binds 127.0.0.1 unless ``serve.host``
says otherwise; with ``$TUNEWRIGHT_API_KEY`` (``serve.api_key_env``) set, ``/v1`` and
``/metrics`` need ``Authorization: Bearer <key>``. SIGTERM stops accepting, answers
what is in flight, flushes the log and exits 0.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import queue
import signal
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from tunewright.batcher import Batcher, Overloaded, Route
from tunewright.contracts import MEDIA_FIELDS
from tunewright.errors import ConfigError, DataError, first_line
from tunewright.media import NOUNS, check_media
from tunewright.predictor import Predictor
from tunewright.release_gate import clear_release
from tunewright.run_folder import RunFolder
from tunewright.shared_base import AdapterPredictor, SharedBase, load_runs
from tunewright.traffic_log import SERVED_DIR, TrafficLog


class TextPair(BaseModel):
    text: str
    text_pair: str


class PredictRequest(BaseModel):
    # texts, text pairs for a task that reads them, or base64-encoded images for an image task
    inputs: list[str | TextPair] | str
    model: str | None = None  # the run's name; needed when several are served


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI's "detail" is accepted and ignored
    url: str  # a data: URL, data:image/png;base64,...; the service fetches no URLs


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageURL


class ChatMessage(BaseModel):
    role: str
    # a text, or OpenAI's content parts: texts and, for a vision-language model, one image
    content: str | list[Annotated[TextPart | ImagePart, Field(discriminator="type")]]


class ChatRequest(BaseModel):
    """OpenAI's chat completion request; sampling options are accepted and ignored (greedy)."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[ChatMessage]
    max_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = None
    prompt: str | list[str]
    max_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False


class Feedback(BaseModel):
    request_id: str  # as a prediction returned it
    label: str  # the true label, one of the run's
    model: str | None = None


@dataclass
class ServedRun:
    """One run folder being served: its predictor, its batcher (shared by the runs on one
    base) and its route through it, and its traffic log."""

    name: str
    folder: RunFolder
    predictor: Predictor
    batcher: Batcher | None = None
    route: Route | None = None
    log: TrafficLog | None = None
    live: LiveMonitor | None = None
    ready: bool = False
    generating: threading.Lock = field(default_factory=threading.Lock)  # one chat generation at a time

    @property
    def input_field(self) -> str:
        return self.predictor.task.input_field


def open_runs(
    folders: list[str], override: str | None, trust_remote_code: bool, share_base: bool
) -> dict[str, ServedRun]:
    """Each run folder, cleared for release (or overridden) and loaded, by its name;
    adapter runs of one base share it (:mod:`.shared_base`) when ``share_base``."""
    cleared: dict[str, tuple[RunFolder, Any]] = {}
    for given in folders:
        folder = RunFolder(given)
        folder.read_config()
        clearance = clear_release(folder, "serve", override)
        name = folder.path.resolve().name
        if name in cleared:
            raise ConfigError(f"serve: two runs are called {name!r}; serve folders with different names")
        cleared[name] = (folder, clearance)
    predictors = load_runs([folder.path for folder, _ in cleared.values()], trust_remote_code, share_base)
    runs: dict[str, ServedRun] = {}
    for name, (folder, clearance) in cleared.items():
        runs[name] = ServedRun(name, folder, predictors[folder.path])
        entry = {"time": _now(), "release": clearance.decision, "override": clearance.override}
        with folder.locked("tunewright serve", wait=True):
            folder.update_json("manifest.json", lambda manifest, e=entry: manifest.setdefault("served", []).append(e))
    return runs


class LiveMonitor:
    """Judges served texts against the run's drift reference on a background thread
    (requests never wait for it), with the run's own monitors and settings: each run of
    ``every_n`` texts, and every ``every_minutes`` what has come since (once it holds
    ``monitor.min_rows``). The report goes to ``reports/drift-served-live-<n>.*``, the
    verdict to ``/metrics`` and ``/v1/monitor``, and ``tunewright_drift_detected`` fires on drift."""

    def __init__(self, run: ServedRun, every_n: int, every_minutes: float, metrics: ServiceMetrics):
        from concurrent.futures import ThreadPoolExecutor

        self.run = run
        self.every_n = every_n
        self.min_rows = run.folder.read_config().monitor.min_rows
        self.metrics = metrics
        self.pending: list[str | dict[str, str]] = []
        self.windows = 0
        self.last: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunewright-monitor")
        self._stopped = threading.Event()
        self._clock = None
        if every_minutes:
            self._clock = threading.Thread(target=self._every, args=(every_minutes * 60,), daemon=True)
            self._clock.start()

    def add(self, texts: list[str | dict[str, str]]) -> None:
        with self._lock:
            self.pending.extend(texts)
            while self.every_n and len(self.pending) >= self.every_n:
                self._take(self.every_n)

    def _every(self, seconds: float) -> None:
        while not self._stopped.wait(seconds):
            with self._lock:
                if len(self.pending) >= self.min_rows:
                    self._take(len(self.pending))

    def _take(self, count: int) -> None:
        """Hand the first ``count`` pending texts to the worker as the next window (lock held)."""
        window, self.pending = self.pending[:count], self.pending[count:]
        self.windows += 1
        self._worker.submit(self._judge, window, self.windows)

    def _judge(self, texts: list[str | dict[str, str]], number: int) -> None:
        from tunewright.monitoring import judge_batch
        from tunewright.plugin_manager import get_plugins
        from tunewright.run import Run

        folder = self.run.folder
        config = folder.read_config()
        examples = [{**_logged(value, self.run.input_field), "label": None} for value in texts]
        sources = [{"path": f"served traffic, window {number} ({len(texts)} inputs)", "sha256": ""}]
        run = Run(folder.path.name, config, folder)
        name = f"served-live-{number:05d}"
        try:
            with folder.locked("tunewright serve", wait=True):
                for report in judge_batch(
                    run, self.run.predictor, examples, name, config.monitor, sources, get_plugins()
                ):
                    self._record(report)
        except Exception as error:  # a failed check is reported; the service goes on
            print(f"tunewright: live monitoring of {self.run.name} failed: {first_line(error)}", file=sys.stderr)

    def _record(self, report: dict[str, Any]) -> None:
        windows = report.get("windows") or []
        layers = {layer for window in windows for layer in window.get("layers") or {}}
        drifted = {layer for window in windows for layer in window.get("drifted_layers") or []}
        self.last = {key: report[key] for key in ("name", "rows", "status", "drift_detected", "severity", "reasons")}
        self.last["drifted_layers"] = sorted(drifted)
        self.metrics.drift.labels(self.run.name).set(1 if report["drift_detected"] else 0)
        for layer in layers:
            self.metrics.layers.labels(self.run.name, layer).set(1 if layer in drifted else 0)

    def close(self) -> None:
        """Finish the windows already taken (a partial last window is left for data=served)."""
        self._stopped.set()
        if self._clock is not None:
            self._clock.join()
        self._worker.shutdown(wait=True)


def build_app(runs: dict[str, ServedRun], settings) -> Any:
    """The FastAPI application for ``runs`` under the ``serve`` config node ``settings``."""
    metrics = ServiceMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batchers: dict[int, Batcher] = {}  # one per loaded model: runs on one base share it
        for run in runs.values():
            run.log = _traffic_log(run, settings.log)
            run.batcher = batchers.setdefault(
                id(run.predictor.model), Batcher(settings.max_batch_size, settings.max_wait_ms, settings.max_queue)
            )
            run.route = Route(_without_autograd(run.predictor.predict), metrics.batch_observer(run.name))
            live = settings.monitor
            if (live.every_n or live.every_minutes) and run.input_field not in MEDIA_FIELDS:
                run.live = LiveMonitor(run, live.every_n, live.every_minutes, metrics)
        for run in runs.values():
            await asyncio.to_thread(_warm_up, run)
            run.ready = True
        print(f"tunewright: serving {', '.join(runs)} at http://{settings.host}:{settings.port} (docs at /docs)")
        try:
            yield
        finally:
            for batcher in batchers.values():
                batcher.close()  # answers what is queued
            for run in runs.values():
                if run.live is not None:
                    run.live.close()
                if run.log is not None:
                    run.log.close()

    app = FastAPI(title="tunewright", lifespan=lifespan)

    app.add_middleware(Guard, settings=settings)

    def chosen(name: str | None) -> ServedRun:
        if name is None and len(runs) == 1:
            return next(iter(runs.values()))
        if name not in runs:
            given = "no model named" if name else "several runs are served; name one with"
            raise HTTPException(422, f"{given} {name or 'model'!r}; served: {', '.join(runs)}")
        return runs[name]

    async def answer(run: ServedRun, values: list[str | dict[str, str] | bytes]) -> dict[str, Any]:
        started = time.perf_counter()
        _check_inputs(values, run, settings)
        with _decoded(values, run.input_field) as (inputs, logged):
            try:
                predictions = await run.batcher.submit(run.route, inputs)
            except Overloaded as error:
                metrics.requests.labels(run.name, "503").inc()
                raise HTTPException(503, f"overloaded: {error}; retry shortly", headers={"Retry-After": "1"}) from None
        answered = []
        for kept, prediction in zip(logged, predictions):
            request_id = uuid.uuid4().hex
            record = {"request_id": request_id, "time": _now(), "run_id": run.name, **kept}
            if run.log is not None:
                run.log.write({**record, **prediction}, run.input_field)
            if "label" in prediction:
                metrics.labels.labels(run.name, prediction["label"]).inc()
            answered.append({"request_id": request_id, **prediction})
        if run.live is not None:
            run.live.add(values)
        metrics.requests.labels(run.name, "200").inc()
        metrics.latency.labels(run.name).observe(time.perf_counter() - started)
        return {"model": run.name, "predictions": answered}

    @app.get("/health/live")
    async def live():
        return {"status": "live"}

    @app.get("/health/ready")
    async def ready():
        waiting = [run.name for run in runs.values() if not run.ready]
        if waiting:
            return JSONResponse({"status": "warming up", "models": waiting}, status_code=503)
        return {"status": "ready", "models": list(runs)}

    @app.get("/metrics")
    async def prometheus():
        for run in runs.values():
            metrics.queue.labels(run.name).set(run.batcher.depth if run.batcher else 0)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/monitor")
    async def monitor():
        return {
            run.name: {
                "every_n": settings.monitor.every_n,
                "windows": run.live.windows if run.live else 0,
                "pending": len(run.live.pending) if run.live else 0,
                "last": run.live.last if run.live else None,
            }
            for run in runs.values()
        }

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [_describe(run, runs) for run in runs.values()]}

    def generating(name: str | None) -> ServedRun:
        run = chosen(name)
        if not run.predictor.task.generates:
            raise HTTPException(400, f"model {run.name!r} does not generate text; use /v1/predict")
        return run

    @app.post("/v1/chat/completions")
    async def chat_completions(request: ChatRequest):
        run = generating(request.model)
        if not request.messages or request.messages[-1].role != "user":
            raise HTTPException(422, "messages: the last message must be the user's")
        files = contextlib.ExitStack()  # removes the conversation's image, if it holds one
        try:
            turns, media = _chat_turns(run, request.messages, files)
        except BaseException:
            files.close()
            raise
        created, identity = int(time.time()), f"chatcmpl-{uuid.uuid4().hex}"

        def answered(answer: str) -> None:
            if run.log is not None:
                record = {"request_id": uuid.uuid4().hex, "time": _now(), "run_id": run.name, **media}
                run.log.write({**record, "text": turns[-1]["content"], "response": answer}, "text")
            metrics.requests.labels(run.name, "200").inc()

        if request.stream:
            pieces = _generating_pieces(run, turns, request.max_tokens, answered, finished=files.close)
            return StreamingResponse(_chat_stream(identity, created, run.name, pieces), media_type="text/event-stream")
        with files:
            answer = await asyncio.to_thread(_chat, run, turns, request.max_tokens)
        answered(answer)
        message = {"role": "assistant", "content": answer}
        choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        return {"id": identity, "object": "chat.completion", "created": created, "model": run.name, "choices": [choice]}

    @app.post("/v1/completions")
    async def completions(request: CompletionRequest):
        run = generating(request.model)
        if run.predictor.task.question_field is not None:
            raise HTTPException(400, f"{_asks_about(run)}; send it to /v1/chat/completions with an image_url part")
        prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
        _check_inputs(prompts, run, settings)
        conversations = [[{"role": "user", "content": prompt}] for prompt in prompts]
        answers = await asyncio.to_thread(_chat_many, run, conversations, request.max_tokens)
        metrics.requests.labels(run.name, "200").inc()
        created, identity = int(time.time()), f"cmpl-{uuid.uuid4().hex}"
        choices = [
            {"index": i, "text": text, "finish_reason": "stop", "logprobs": None} for i, text in enumerate(answers)
        ]
        if request.stream:
            return StreamingResponse(
                _completion_stream(identity, created, run.name, choices), media_type="text/event-stream"
            )
        return {"id": identity, "object": "text_completion", "created": created, "model": run.name, "choices": choices}

    @app.post("/v1/predict", openapi_extra=PREDICT_BODY)
    async def predict(request: Request):
        model, values = await _predict_request(request)
        return await answer(chosen(model), values)

    @app.post("/v1/models/{name}/predict", openapi_extra=PREDICT_BODY)
    async def predict_with(name: str, request: Request):
        _, values = await _predict_request(request)
        return await answer(chosen(name), values)

    @app.post("/v1/feedback", status_code=202)
    async def feedback(request: Feedback):
        run = chosen(request.model)
        if request.label not in run.predictor.label_names:
            raise HTTPException(422, f"label {request.label!r} is not one of {', '.join(run.predictor.label_names)}")
        if run.log is None:
            raise HTTPException(409, "serve.log.enabled=false: there is no traffic log to join feedback to")
        run.log.feedback(request.request_id, request.label, _now())
        return {"recorded": True}

    return app


class ServiceMetrics:
    """The Prometheus series ``/metrics`` shows, in a registry of the app's own."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tunewright_requests", "Requests answered, by status", ["model", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "tunewright_request_seconds", "Time to answer a request", ["model"], registry=self.registry
        )
        self.batches = Histogram(
            "tunewright_batch_size",
            "Inputs per forward pass",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.queue = Gauge("tunewright_queue_depth", "Inputs waiting for a batch", ["model"], registry=self.registry)
        self.labels = Counter("tunewright_predictions", "Predicted labels", ["model", "label"], registry=self.registry)
        self.drift = Gauge(
            "tunewright_drift_detected", "1 when the last live window drifted", ["model"], registry=self.registry
        )
        self.layers = Gauge(
            "tunewright_drift_layer",
            "1 when the layer drifted in the last live window",
            ["model", "layer"],
            registry=self.registry,
        )

    def batch_observer(self, model: str):
        self.batches.labels(model)  # the series exist, at zero, before the first batch
        self.queue.labels(model).set(0)

        def observe(size: int, depth: int) -> None:
            self.batches.labels(model).observe(size)
            self.queue.labels(model).set(depth)

        return observe


class Guard:
    """ASGI middleware that refuses a request before its body is read: a missing or wrong
    API key (401), a body without a length (411) or over ``serve.max_body_kb`` (413)."""

    def __init__(self, app, settings):
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
            refusal = _refusal(scope["method"], scope["path"], headers, self.settings)
            if refusal is not None:
                await JSONResponse({"error": refusal[1]}, status_code=refusal[0])(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _refusal(method: str, path: str, headers: dict[str, str], settings) -> tuple[int, str] | None:
    """Why a request is refused before it is read, as (status, message); ``None`` to go on."""
    key = os.environ.get(settings.api_key_env)
    if key and path.startswith(("/v1", "/metrics")):
        given = headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            return 401, f"missing or wrong API key: send 'Authorization: Bearer <${settings.api_key_env}>'"
    if method == "POST":
        length = headers.get("content-length")
        if length is None:
            return 411, "send the request body with a Content-Length"
        if not length.isdigit() or int(length) > settings.max_body_kb * 1024:
            return 413, f"request body of {length} bytes is over serve.max_body_kb={settings.max_body_kb}"
    return None


# /v1/predict's body, for the OpenAPI docs: JSON, or files uploaded as a form
PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": PredictRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "inputs": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "model": {"type": "string"},
                    },
                    "required": ["inputs"],
                }
            },
        },
    }
}


async def _predict_request(request: Request) -> tuple[str | None, list[str | dict[str, str] | bytes]]:
    """The model named and the inputs of a predict request: a JSON body
    (:class:`PredictRequest`), or a multipart form whose ``inputs`` fields are uploaded
    files (an image's or a recording's bytes) or texts (``curl -F inputs=@photo.png``)."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        values = [await v.read() if isinstance(v, UploadFile) else v for v in form.getlist("inputs")]
        model = form.get("model")
        return (model if isinstance(model, str) else None), values
    try:
        body = PredictRequest.model_validate_json(await request.body())
    except ValidationError as error:
        raise RequestValidationError(error.errors(include_url=False)) from None
    given = [body.inputs] if isinstance(body.inputs, str) else body.inputs
    return body.model, [value.model_dump() if isinstance(value, TextPair) else value for value in given]


def _check_inputs(values: list[str | dict[str, str] | bytes], run: ServedRun, settings) -> None:
    if not values:
        raise HTTPException(422, "inputs: give one or more inputs")
    if len(values) > settings.max_inputs:
        raise HTTPException(413, f"inputs: {len(values)} inputs are over serve.max_inputs={settings.max_inputs}")
    if run.predictor.task.question_field is not None:
        raise HTTPException(400, f"{_asks_about(run)}; send it to /v1/chat/completions with an image_url part")
    reads_pairs = "text_pair" in run.predictor.task.example_fields
    for number, value in enumerate(values):
        if isinstance(value, dict) and not reads_pairs:
            raise HTTPException(422, f"inputs[{number}]: model {run.name!r} reads no text pairs; send a string")
        if run.input_field in MEDIA_FIELDS:
            continue
        if isinstance(value, bytes):
            raise HTTPException(422, f"inputs[{number}]: model {run.name!r} reads text; send text, not a file")
        for text in value.values() if isinstance(value, dict) else [value]:
            if len(text) > settings.max_text_chars:
                raise HTTPException(
                    422,
                    f"inputs[{number}]: {len(text)} characters are over serve.max_text_chars={settings.max_text_chars}",
                )


@contextlib.contextmanager
def _decoded(values: list[str | dict[str, str] | bytes], input_field: str):
    """Inputs as the predictor takes them, and what the traffic log keeps of each: texts
    as they are; images and recordings (uploaded bytes, or base64 in JSON) written to
    temporary files (a client never names a path on the server, and the files are
    removed afterwards), logged by their bytes' SHA-256."""
    if input_field not in MEDIA_FIELDS:
        yield values, [_logged(value, input_field) for value in values]
        return
    with tempfile.TemporaryDirectory(prefix="tunewright-serve-") as directory:
        paths, digests = [], []
        for number, value in enumerate(values):
            data = value if isinstance(value, bytes) else _base64_file(value, number, NOUNS[input_field])
            path = Path(directory) / f"input-{number}"
            digests.append(_media_file(data, path, input_field, f"inputs[{number}]"))
            paths.append(str(path))
        yield paths, digests


def _media_file(data: bytes, path: Path, field: str, where: str) -> dict[str, str]:
    """Write a client's image or recording to ``path`` and check it (a 422 naming
    ``where``, never the server's path, when it is unreadable); returns what the traffic
    log keeps of it, its SHA-256."""
    path.write_bytes(data)
    try:
        check_media(field, path, where)
    except DataError as error:
        raise HTTPException(422, str(error).replace(str(path), f"the {NOUNS[field]}")) from None
    return {field: "sha256:" + hashlib.sha256(data).hexdigest()}


def _base64_file(value: str, number: int, noun: str) -> bytes:
    try:
        return _base64(value)
    except (binascii.Error, ValueError):
        raise HTTPException(
            422, f"inputs[{number}]: not base64 (send each {noun}'s bytes base64-encoded, or upload it as a file)"
        ) from None


def _base64(value: str) -> bytes:
    """The bytes of base64 text, or of a ``data:`` URL's base64 payload."""
    return base64.b64decode(value.split(",", 1)[-1] if value.startswith("data:") else value, validate=True)


def _asks_about(run: ServedRun) -> str:
    return f"model {run.name!r} answers questions about an {run.input_field}"


def _chat_turns(
    run: ServedRun, messages: list[ChatMessage], files: contextlib.ExitStack
) -> tuple[list[dict[str, str]], dict[str, str]]:
    """The request's messages as the task's chat turns, and what the traffic log keeps of
    their media. Content parts become one text per message (joined by newlines); an
    image part, only for a model with a :attr:`~tunewright.contracts.Task.question_field`,
    must be a base64 ``data:`` URL in the first user message: it is written to a
    temporary folder that closing ``files`` removes, checked, put on that turn as ``"image": path`` and logged by its
    SHA-256. A model that asks about an image refuses a conversation without one."""
    field = run.input_field
    asks = run.predictor.task.question_field is not None
    first_user = next(i for i, message in enumerate(messages) if message.role == "user")
    turns, media = [], {}
    for i, message in enumerate(messages):
        parts = [TextPart(type="text", text=message.content)] if isinstance(message.content, str) else message.content
        turn = {"role": message.role, "content": "\n".join(p.text for p in parts if isinstance(p, TextPart))}
        for j, part in enumerate(p for p in parts if isinstance(p, ImagePart)):
            where = f"messages[{i}].content: image_url {j + 1}"
            if not asks:
                raise HTTPException(422, f"{where}: model {run.name!r} reads no images; send text")
            if media or i != first_user:
                raise HTTPException(422, f"{where}: send one image, in the first user message")
            if not part.image_url.url.startswith("data:"):
                raise HTTPException(
                    422, f"{where}: the service fetches no URLs; send the image inline as data:image/png;base64,..."
                )
            try:
                data = _base64(part.image_url.url)
            except (binascii.Error, ValueError):
                raise HTTPException(422, f"{where}: the data: URL is not base64") from None
            path = Path(files.enter_context(tempfile.TemporaryDirectory(prefix="tunewright-serve-"))) / "image"
            media = _media_file(data, path, field, where)
            turn[field] = str(path)
        turns.append(turn)
    if asks and not media:
        raise HTTPException(422, f"messages: {_asks_about(run)}; send one as an image_url content part")
    return turns, media


def _logged(value: str | dict[str, str], input_field: str) -> dict[str, str]:
    """A text input as an example: a text, or a text pair as given."""
    return value if isinstance(value, dict) else {input_field: value}


def _traffic_log(run: ServedRun, settings) -> TrafficLog | None:
    if not settings.enabled:
        return None
    folder = run.folder.path / SERVED_DIR
    return TrafficLog(folder, settings.replica, settings.shard_mb * 2**20, settings.sample, settings.redact)


def _warm_up(run: ServedRun) -> None:
    """One forward pass before the service says it is ready (loads kernels, fills caches):
    a blank image, a second of silence or a word, with a question where the task asks one."""
    with tempfile.TemporaryDirectory() as directory:
        value = _blank_input(run.input_field, Path(directory))
        question = run.predictor.task.question_field
        run.predictor.predict([{run.input_field: value, question: "warm-up"} if question else value])


def _blank_input(field: str, directory: Path) -> str:
    """An input of kind ``field`` with nothing in it: a file in ``directory`` for media."""
    if field == "image":
        from PIL import Image

        path = directory / "warm-up.png"
        Image.new("RGB", (32, 32)).save(path)
        return str(path)
    if field == "audio":
        from tunewright.audio import soundfile

        path = directory / "warm-up.wav"
        soundfile().write(path, np.zeros(16000, dtype=np.float32), 16000)
        return str(path)
    return "warm-up"


def _chat(run: ServedRun, turns: list[dict[str, str]], max_tokens: int | None, on_text=None) -> str:
    return _chat_many(run, [turns], max_tokens, on_text)[0]


def _chat_many(
    run: ServedRun, conversations: list[list[dict[str, str]]], max_tokens: int | None, on_text=None
) -> list[str]:
    with run.generating, torch.inference_mode():
        return run.predictor.chat(conversations, max_tokens, on_text)


def _without_autograd(predict):
    """``predict`` under ``torch.inference_mode``: a service never trains, so its passes
    skip autograd's bookkeeping altogether (training-time evaluation keeps ``no_grad``)."""

    def predict_for_service(inputs):
        with torch.inference_mode():
            return predict(inputs)

    return predict_for_service


_FINISHED = object()  # the end of a generated answer's pieces


def _generating_pieces(
    run: ServedRun, turns: list[dict[str, str]], max_tokens: int | None, answered, finished
) -> queue.Queue:
    """Generate the answer on a thread of its own; its pieces arrive in the queue as the
    model produces them, then the whole answer goes to ``answered`` (log and metrics)
    and :data:`_FINISHED` (or the exception generation raised) ends the queue.
    ``finished`` is called when generation is over (the turns' files are removed)."""
    pieces: queue.Queue = queue.Queue()

    def produce() -> None:
        try:
            answered(_chat(run, turns, max_tokens, on_text=pieces.put))
            pieces.put(_FINISHED)
        except Exception as error:  # reported to the client in the stream
            pieces.put(error)
        finally:
            finished()

    threading.Thread(target=produce, name="tunewright-generate", daemon=True).start()
    return pieces


def _sse(payload: dict[str, Any]) -> str:
    import json

    return f"data: {json.dumps(payload)}\n\n"


async def _chat_stream(identity: str, created: int, model: str, pieces: queue.Queue):
    """The answer as OpenAI's chat stream, token by token as it is generated: a role
    chunk, a content chunk per piece, a stop chunk, ``[DONE]``; a failure mid-answer is
    an ``error`` event before ``[DONE]``."""
    base = {"id": identity, "object": "chat.completion.chunk", "created": created, "model": model}

    def chunk(delta: dict[str, str], finish: str | None = None) -> str:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    yield chunk({"role": "assistant", "content": ""})
    while (piece := await asyncio.to_thread(pieces.get)) is not _FINISHED:
        if isinstance(piece, Exception):
            yield _sse({"error": {"message": f"generation failed: {first_line(piece)}", "type": "server_error"}})
            break
        yield chunk({"content": piece})
    else:
        yield chunk({}, "stop")
    yield "data: [DONE]\n\n"


def _completion_stream(identity: str, created: int, model: str, choices: list[dict[str, Any]]):
    base = {"id": identity, "object": "text_completion", "created": created, "model": model}
    for choice in choices:
        yield _sse({**base, "choices": [choice]})
    yield "data: [DONE]\n\n"


def _describe(run: ServedRun, runs: dict[str, ServedRun]) -> dict[str, Any]:
    config = run.folder.read_config()
    base = _base_of(run)
    return {
        "id": run.name,
        "object": "model",
        "created": 0,
        "owned_by": "tunewright",
        "task": config.model.kind,
        "method": config.method.kind,
        "input": run.input_field,
        "labels": run.predictor.label_names,
        # the runs whose adapters sit on the same loaded base as this one's
        "shares_base_with": [
            other.name for other in runs.values() if other is not run and base is not None and _base_of(other) is base
        ],
    }


def _base_of(run: ServedRun) -> SharedBase | None:
    return run.predictor.base if isinstance(run.predictor, AdapterPredictor) else None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def serve(folders: list[str], overrides: list[str], override: str | None, trust_remote_code: bool) -> int:
    """Compose the ``serve`` config, load the runs and serve them until SIGTERM or Ctrl-C."""
    import uvicorn

    from tunewright.config import compose_service_config
    from tunewright.plugin_manager import get_plugins

    settings = compose_service_config(overrides, get_plugins()).serve
    if override:
        print(f"tunewright: WARNING: serving despite the release decision: {override}", file=sys.stderr)
    app = build_app(open_runs(folders, override, trust_remote_code, settings.share_base), settings)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="warning", timeout_graceful_shutdown=30
    )
    _graceful_server()(config).run()
    return 0


def _graceful_server():
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn's server, except that the SIGTERM (or Ctrl-C) it shut down on gracefully
        is not raised again afterwards: a drained service exits 0, as an operator expects."""

        @contextlib.contextmanager
        def capture_signals(self):
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return GracefulServer
