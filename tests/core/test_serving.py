"""``tunewright serve``: a real uvicorn server in a subprocess, driven over real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from conftest import free_port, tiny_lm_overrides, tiny_run_overrides

from tunewright.batcher import Batcher, Overloaded, Route
from tunewright.cli import main
from tunewright.config import compose_service_config
from tunewright.errors import ConfigError, DataError
from tunewright.plugin_manager import get_plugins
from tunewright.predictor import load_run
from tunewright.serving import open_runs
from tunewright.traffic_log import read_lines, redact

KEY = "s3cret-key"
TEXTS = ["Battery died in a day.", "Great value, works perfectly.", "It is fine, I guess."]


@pytest.fixture(scope="module")
def run_folder(tiny_bert, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", *tiny_run_overrides(tiny_bert, runs, "paths.run_id=served", "audit=none")]) == 0
    return runs / "served"


class Server:
    def __init__(self, folder: Path | list[Path], *options: str, key: str | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "TUNEWRIGHT_API_KEY"}
        if key:
            env["TUNEWRIGHT_API_KEY"] = key
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        folders = folder if isinstance(folder, list) else [folder]
        command = ["serve", *(f"run={f}" for f in folders), f"serve.port={self.port}", "override=tested", *options]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tunewright", *command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited: {self.process.stderr.read()}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("serve did not become ready")

    def post(self, path: str, **kwargs) -> httpx.Response:
        return httpx.post(
            f"{self.url}{path}", headers={**self.headers, **kwargs.pop("headers", {})}, timeout=60, **kwargs
        )

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=60)
        return self.process.returncode, err


@pytest.fixture(scope="module")
def server(run_folder):
    server = Server(run_folder, "serve.max_inputs=8", "serve.max_text_chars=200", "serve.max_body_kb=4", key=KEY)
    yield server
    if server.process.poll() is None:
        server.stop()


def test_a_blocked_run_is_not_served_without_a_reason(run_folder, capsys):
    assert main(["serve", f"run={run_folder}", f"serve.port={free_port()}"]) == 1
    err = capsys.readouterr().err
    assert "release blocked: no bias audit ran" in err and 'to serve anyway, pass override="<your reason>"' in err
    assert "bias.html" not in err  # no audit ran: no report to point at
    assert len(err.strip().splitlines()) == 1


def test_serve_keys_are_strict():
    with pytest.raises(ConfigError, match="serve.prot: unknown key; valid keys: api_key_env, host"):
        compose_service_config(["serve.prot=1"], get_plugins())
    assert compose_service_config([], get_plugins()).serve.host == "127.0.0.1"


def merged_tolerance(predictor) -> float:
    """How closely the service's predictions match the run's: the service folds LoRA into
    the weights, the same sums rounded differently, which bf16 (``precision=auto`` on a
    CPU with native bf16) shows at its own resolution: a probability may differ by one
    step of its 8-bit mantissa (2**-7)."""
    return 1e-6 if predictor.dtype is None else torch.finfo(predictor.dtype).eps


def test_served_predictions_are_the_runs_own(server, run_folder):
    response = server.post("/v1/predict", json={"inputs": TEXTS})
    assert response.status_code == 200
    served = response.json()["predictions"]
    run = load_run(run_folder)
    expected = run.predict(TEXTS)
    tolerance = merged_tolerance(run)
    assert [p["label"] for p in served] == [p["label"] for p in expected]
    for got, want in zip(served, expected):
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=tolerance)
        assert len(got["request_id"]) == 32
    pairs = [{"text": "Is the battery good?", "text_pair": "It died in a day."}]
    served_pair = server.post("/v1/predict", json={"inputs": pairs}).json()["predictions"][0]
    assert served_pair["probabilities"] == pytest.approx(run.predict(pairs)[0]["probabilities"], abs=tolerance)
    models = httpx.get(f"{server.url}/v1/models", headers=server.headers).json()["data"]
    assert models[0]["id"] == "served" and models[0]["labels"] == list(expected[0]["probabilities"])


def test_the_api_key_is_enforced(server):
    assert httpx.post(f"{server.url}/v1/predict", json={"inputs": TEXTS[:1]}).status_code == 401
    wrong = server.post("/v1/predict", json={"inputs": TEXTS[:1]}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "TUNEWRIGHT_API_KEY" in wrong.json()["error"]
    assert httpx.get(f"{server.url}/health/live").status_code == 200  # probes need no key


def test_limits_are_named_in_the_refusal(server):
    many = server.post("/v1/predict", json={"inputs": ["a"] * 9})
    assert many.status_code == 413 and "serve.max_inputs=8" in many.json()["detail"]
    long = server.post("/v1/predict", json={"inputs": ["x" * 201]})
    assert long.status_code == 422 and "serve.max_text_chars=200" in long.json()["detail"]
    body = server.post(
        "/v1/predict", content=json.dumps({"inputs": ["y" * 5000]}), headers={"content-type": "application/json"}
    )
    assert body.status_code == 413 and "serve.max_body_kb=4" in body.json()["error"]
    malformed = server.post("/v1/predict", content="{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 422 and malformed.json()["detail"][0]["type"] == "json_invalid"
    missing = server.post("/v1/predict", json={"texts": ["a"]})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["inputs"]
    upload = server.post("/v1/predict", files={"inputs": ("note.txt", b"Battery died.")})
    assert upload.status_code == 422 and "model 'served' reads text; send text, not a file" in upload.json()["detail"]
    chat = server.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 400 and "does not generate text; use /v1/predict" in chat.json()["detail"]
    unknown = server.post("/v1/predict", json={"inputs": TEXTS[:1], "model": "other"})
    assert unknown.status_code == 422 and "served: served" in unknown.json()["detail"]


def test_concurrent_requests_share_batches(server):
    async def burst():
        async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=60) as client:
            return await asyncio.gather(
                *[client.post("/v1/predict", json={"inputs": [f"review {i}"]}) for i in range(50)]
            )

    def batches() -> tuple[float, float]:
        text = httpx.get(f"{server.url}/metrics", headers=server.headers).text
        series = dict(line.split(" ") for line in text.splitlines() if line.startswith("tunewright_batch_size_"))
        return float(series['tunewright_batch_size_count{model="served"}']), float(
            series['tunewright_batch_size_sum{model="served"}']
        )

    count_before, inputs_before = batches()
    assert {response.status_code for response in asyncio.run(burst())} == {200}
    count, inputs = batches()
    assert inputs - inputs_before == 50 and count - count_before < 50  # some batch held more than one request


def test_feedback_joins_the_log_and_sigterm_loses_no_answered_request(server, run_folder, capsys):
    answered = server.post("/v1/predict", json={"inputs": ["The charger broke.", "Lovely colour."]}).json()[
        "predictions"
    ]
    bad = server.post("/v1/feedback", json={"request_id": answered[0]["request_id"], "label": "meh"})
    assert bad.status_code == 422 and "not one of negative, positive" in bad.json()["detail"]
    for prediction, label in zip(answered, ["negative", "positive"]):
        assert (
            server.post("/v1/feedback", json={"request_id": prediction["request_id"], "label": label}).status_code
            == 202
        )

    async def load():  # requests in flight when SIGTERM arrives are answered and logged
        async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=60) as client:
            sent = [asyncio.create_task(client.post("/v1/predict", json={"inputs": [f"late {i}"]})) for i in range(20)]
            await asyncio.sleep(0.05)
            server.process.send_signal(signal.SIGTERM)
            return await asyncio.gather(*sent, return_exceptions=True)

    late = asyncio.run(load())
    assert server.process.wait(timeout=60) == 0
    ok_late = sum(1 for r in late if isinstance(r, httpx.Response) and r.status_code == 200)
    logged = [r for shard in sorted((run_folder / "served").glob("r0-*.jsonl")) for r in read_lines(shard)]
    late_logged = [r for r in logged if r["text"].startswith("late ")]
    assert len(late_logged) == ok_late
    assert {r["request_id"] for r in logged} >= {p["request_id"] for p in answered}

    assert main(["monitor", f"run={run_folder}", "data=served", "monitor.name=served", "monitor.min_rows=10"]) == 0
    report = json.loads((run_folder / "reports" / "drift-served.json").read_text())
    assert report["rows"] == len(logged)
    assert any(source["path"].endswith("feedback-r0.jsonl") for source in report["sources"])
    performance = report["windows"][0]["layers"]["performance"]  # judged on the two rows that got feedback
    assert performance["available"] and performance["current"]["labelled_rows"] == 2


def test_an_overloaded_queue_answers_503_at_once(run_folder):
    server = Server(
        run_folder, "serve.max_queue=2", "serve.max_batch_size=1", "serve.max_wait_ms=0", "serve.log.enabled=false"
    )
    try:

        async def burst():
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                return await asyncio.gather(
                    *[client.post("/v1/predict", json={"inputs": ["x" * 150]}) for _ in range(40)]
                )

        responses = asyncio.run(burst())
        refused = [r for r in responses if r.status_code == 503]
        assert refused and all(r.headers["retry-after"] == "1" for r in refused)
        assert "serve.max_queue=2" in refused[0].json()["detail"]
        assert any(r.status_code == 200 for r in responses)
    finally:
        assert server.stop()[0] == 0


def test_a_torn_last_line_is_skipped_and_a_bad_middle_line_is_named(tmp_path, capsys):
    shard = tmp_path / "r0-00000.jsonl"
    shard.write_text('{"request_id": "a", "text": "ok"}\n{"request_id": "b", "te')
    assert [r["request_id"] for r in read_lines(shard)] == ["a"]
    assert f"{shard}:2: skipping a torn last line" in capsys.readouterr().err
    shard.write_text('{"request_id": "a"}\nnot json\n{"request_id": "c"}\n')
    with pytest.raises(DataError, match=r"r0-00000.jsonl:2: not a JSON line"):
        read_lines(shard)


def test_redaction_masks_contacts_and_cards():
    masked = redact("Mail jo.doe@example.com or call +44 20 7946 0958, card 4111 1111 1111 1111.")
    assert masked == "Mail [email] or call [phone], card [card]."


def test_the_batcher_gathers_requests_and_refuses_past_its_queue():
    seen = []

    def predict(inputs):
        seen.append(len(inputs))
        time.sleep(0.05)
        return [value * 2 for value in inputs]

    double = Route(predict)
    batcher = Batcher(max_batch_size=8, max_wait_ms=20, max_queue=10)

    async def run():
        answers = await asyncio.gather(*[batcher.submit(double, [i]) for i in range(6)])
        with pytest.raises(Overloaded, match="serve.max_queue=10"):
            await asyncio.gather(*[batcher.submit(double, [1, 2, 3]) for _ in range(5)])
        return answers

    assert asyncio.run(run()) == [[0], [2], [4], [6], [8], [10]]
    assert max(seen) > 1
    batcher.close()


def test_one_batch_answers_each_route_with_its_own_predict_in_arrival_order():
    calls, sizes = [], []

    def route(name: str, factor: int) -> Route:
        def predict(inputs):
            calls.append(name)
            return [value * factor for value in inputs]

        return Route(predict, lambda size, depth: sizes.append((name, size)))

    double, negate = route("double", 2), route("negate", -1)
    batcher = Batcher(max_batch_size=16, max_wait_ms=50, max_queue=100)

    async def run():
        sent = [batcher.submit(double if i % 2 else negate, [i, i]) for i in range(6)]
        return await asyncio.gather(*sent)

    assert asyncio.run(run()) == [[0, 0], [2, 2], [-2, -2], [6, 6], [-4, -4], [10, 10]]
    assert calls == ["negate", "double"] and sizes == [("negate", 6), ("double", 6)]  # one batch, two shares
    batcher.close()


SHARED = Path(__file__).parents[3] / "shared" / "data" / "sentiment_labelled_sentences"


def test_live_monitoring_turns_drifted_for_shifted_traffic_only(tiny_bert, tmp_path):
    runs = tmp_path / "runs"
    overrides = [
        o for o in tiny_run_overrides(tiny_bert, runs, "paths.run_id=live", "audit=none") if o != "data.limit=60"
    ]
    assert main(["train", *overrides, "data.limit=400"]) == 0
    folder = runs / "live"
    reference = [json.loads(line)["text"] for line in (folder / "reports/drift_reference/rows.jsonl").open()]
    imdb = [line.rsplit("\t", 1)[0] for line in (SHARED / "imdb_labelled.txt").read_text().splitlines() if "\t" in line]
    server = Server(folder, "serve.monitor.every_n=60", "serve.log.enabled=false")
    try:

        def window(texts: list[str], number: int) -> dict:
            for start in range(0, 60, 10):
                assert server.post("/v1/predict", json={"inputs": texts[start : start + 10]}).status_code == 200
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                state = httpx.get(f"{server.url}/v1/monitor").json()["live"]
                if state["last"] and state["last"]["name"] == f"served-live-{number:05d}":
                    return state["last"]
                time.sleep(0.5)
            raise AssertionError(f"window {number} was never judged")

        same = window(reference[:60], 1)
        assert same["status"] == "no_drift" and not same["drift_detected"]
        # Movie reviews, two sentences each: another domain, and longer than any product review.
        shifted = window([f"{a} {b}" for a, b in zip(imdb[:60], imdb[60:120])], 2)
        assert shifted["drift_detected"] and shifted["drifted_layers"], shifted
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'tunewright_drift_detected{model="live"} 1.0' in metrics
        assert (folder / "reports" / "drift-served-live-00002.json").is_file()
    finally:
        assert server.stop()[0] == 0


def test_a_quiet_service_is_judged_on_the_clock(run_folder):
    server = Server(run_folder, "serve.monitor.every_minutes=0.01", "serve.log.enabled=false")
    try:  # every 0.6 s, once the run's monitor.min_rows (30) texts have come
        assert server.post("/v1/predict", json={"inputs": TEXTS * 3}).status_code == 200
        time.sleep(1.5)
        assert httpx.get(f"{server.url}/v1/monitor").json()["served"]["windows"] == 0
        assert server.post("/v1/predict", json={"inputs": TEXTS * 10}).status_code == 200
        deadline = time.monotonic() + 60
        while not (state := httpx.get(f"{server.url}/v1/monitor").json()["served"])["last"]:
            assert time.monotonic() < deadline, "the window was never judged"
            time.sleep(0.3)
        assert state["windows"] == 1 and state["last"]["rows"] == 39 and state["pending"] == 0
    finally:
        assert server.stop()[0] == 0


def test_two_adapter_runs_share_one_base_and_each_answers_with_its_own(tiny_bert, tmp_path):
    for name, seed, rate in (("queue_a", 1, 1e-3), ("queue_b", 2, 5e-2)):  # adapters far apart
        extra = (f"paths.run_id={name}", f"seed={seed}", f"trainer.learning_rate={rate}", "audit=none")
        overrides = tiny_run_overrides(tiny_bert, tmp_path, *extra)
        assert main(["train", *overrides]) == 0
    folders = [tmp_path / "queue_a", tmp_path / "queue_b"]
    expected = {folder.name: load_run(folder).probabilities(TEXTS) for folder in folders}
    assert abs(expected["queue_a"] - expected["queue_b"]).max() > 1e-3  # the adapters differ

    shared = open_runs([str(f) for f in folders], "tested", trust_remote_code=False, share_base=True)
    assert shared["queue_a"].predictor.model is shared["queue_b"].predictor.model
    apart = open_runs([str(f) for f in folders], "tested", trust_remote_code=False, share_base=False)
    assert apart["queue_a"].predictor.model is not apart["queue_b"].predictor.model

    server = Server(folders)
    try:
        described = {model["id"]: model for model in httpx.get(f"{server.url}/v1/models").json()["data"]}
        assert described["queue_a"]["shares_base_with"] == ["queue_b"]

        async def interleaved():  # batches of both runs take turns on the base
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                names = ["queue_a", "queue_b"] * 10
                sent = [client.post(f"/v1/models/{name}/predict", json={"inputs": TEXTS}) for name in names]
                return names, await asyncio.gather(*sent)

        names, responses = asyncio.run(interleaved())
        label_names = load_run(folders[0]).label_names
        for name, response in zip(names, responses):
            assert response.status_code == 200
            for row, prediction in zip(expected[name], response.json()["predictions"]):
                assert [prediction["probabilities"][label] for label in label_names] == pytest.approx(row, abs=1e-5)
    finally:
        assert server.stop()[0] == 0


def test_a_language_model_run_speaks_the_openai_api(tiny_gpt2, tmp_path):
    """The official openai client, unchanged, against a served causal LM run."""
    from openai import OpenAI

    assert main(["train", *tiny_lm_overrides(tiny_gpt2, tmp_path, "lm")]) == 0
    turns = [{"role": "user", "content": "Battery died in a day."}]
    expected = load_run(tmp_path / "lm").chat([turns])[0]
    server = Server(tmp_path / "lm")
    try:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="unused")
        assert [model.id for model in client.models.list()] == ["lm"]
        reply = client.chat.completions.create(model="lm", messages=turns)
        assert reply.choices[0].message.content == expected and reply.choices[0].finish_reason == "stop"
        streamed = client.chat.completions.create(model="lm", messages=turns, stream=True)
        pieces = [chunk.choices[0].delta.content for chunk in streamed if chunk.choices[0].delta.content]
        assert "".join(pieces) == expected and len(pieces) > 1  # token by token, not the answer at once
        completion = client.completions.create(model="lm", prompt="Battery died in a day.", max_tokens=2)
        assert completion.choices[0].text == load_run(tmp_path / "lm").chat([turns], 2)[0]
        refused = server.post("/v1/chat/completions", json={"messages": [{"role": "assistant", "content": "hi"}]})
        assert refused.status_code == 422 and "the last message must be the user's" in refused.json()["detail"]
        # OpenAI's content parts: texts joined by newlines; an image is refused by a text model
        parts = [{"type": "text", "text": "Battery died"}, {"type": "text", "text": "in a day."}]
        reply = client.chat.completions.create(model="lm", messages=[{"role": "user", "content": parts}])
        joined = [{"role": "user", "content": "Battery died\nin a day."}]
        assert reply.choices[0].message.content == load_run(tmp_path / "lm").chat([joined])[0]
        image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
        refused = server.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [image]}]})
        assert refused.status_code == 422
        assert refused.json()["detail"] == "messages[0].content: image_url 1: model 'lm' reads no images; send text"
    finally:
        assert server.stop()[0] == 0
    logged = [r for shard in (tmp_path / "lm" / "served").glob("r0-*.jsonl") for r in read_lines(shard)]
    assert {"text": "Battery died in a day.", "response": expected}.items() <= logged[0].items()


def test_an_image_run_takes_base64_images_and_never_a_path(tmp_path):
    import base64

    from vision_models import save_tiny_vision_model, write_images

    photos = tmp_path / "photos"
    for path, label in write_images(tmp_path / "pool", 40, ["green", "red"]):
        (photos / label).mkdir(parents=True, exist_ok=True)
        path.rename(photos / label / path.name)
    model = save_tiny_vision_model("vit", tmp_path / "vit")
    overrides = [
        "model=image_classification",
        f"model.name_or_path={model}",
        "data=image_folder",
        f"data.path={photos}",
        "trainer.max_epochs=1",
        "trainer.progress_bar=false",
        f"paths.runs_dir={tmp_path / 'runs'}",
        "paths.run_id=images",
    ]
    assert main(["train", *overrides]) == 0
    images = sorted(photos.rglob("*.png"))[:2]
    run = load_run(tmp_path / "runs" / "images")
    expected = run.predict([str(path) for path in images])
    server = Server(tmp_path / "runs" / "images")
    try:
        encoded = [base64.b64encode(path.read_bytes()).decode() for path in images]
        served = server.post("/v1/predict", json={"inputs": encoded}).json()["predictions"]
        assert [p["label"] for p in served] == [p["label"] for p in expected]
        assert served[0]["probabilities"] == pytest.approx(expected[0]["probabilities"], abs=merged_tolerance(run))
        uploaded = server.post("/v1/predict", files=[("inputs", path.open("rb")) for path in images])
        assert [p["label"] for p in uploaded.json()["predictions"]] == [p["label"] for p in expected]
        path_given = server.post("/v1/predict", json={"inputs": [str(images[0])]})
        assert path_given.status_code == 422 and "not base64" in path_given.json()["detail"]
        pair = server.post("/v1/predict", json={"inputs": [{"text": "a", "text_pair": "b"}]})
        assert pair.status_code == 422 and "model 'images' reads no text pairs" in pair.json()["detail"]
        garbage = server.post("/v1/predict", json={"inputs": [base64.b64encode(b"not an image").decode()]})
        assert garbage.status_code == 422 and "inputs[0]: the image is not a readable image" in garbage.json()["detail"]
    finally:
        assert server.stop()[0] == 0
    (shard,) = (tmp_path / "runs" / "images" / "served").glob("r0-*.jsonl")
    logged = read_lines(shard)
    assert len(logged) == 4 and all(record["image"].startswith("sha256:") for record in logged)
    assert logged[0]["image"] == logged[2]["image"]  # the same photo, base64 or uploaded


def test_an_audio_run_takes_uploaded_recordings_and_refuses_what_does_not_decode(tmp_path):
    import base64

    from audio_models import save_tiny_audio_model, write_recordings

    calls = tmp_path / "calls"
    for path, label in write_recordings(tmp_path / "pool", 24, ["high", "low"]):
        (calls / label).mkdir(parents=True, exist_ok=True)
        path.rename(calls / label / path.name)
    overrides = [
        "model=audio_classification",
        f"model.name_or_path={save_tiny_audio_model(tmp_path / 'wav2vec2')}",
        "data=audio_folder",
        f"data.path={calls}",
        "trainer.max_epochs=1",
        "trainer.progress_bar=false",
        f"paths.runs_dir={tmp_path / 'runs'}",
        "paths.run_id=calls",
    ]
    assert main(["train", *overrides]) == 0
    recordings = sorted(calls.rglob("*.wav"))[:2]
    expected = load_run(tmp_path / "runs" / "calls").predict([str(path) for path in recordings])
    server = Server(tmp_path / "runs" / "calls")
    try:
        assert httpx.get(f"{server.url}/v1/models").json()["data"][0]["input"] == "audio"
        uploaded = server.post("/v1/predict", files=[("inputs", path.open("rb")) for path in recordings])
        assert [p["label"] for p in uploaded.json()["predictions"]] == [p["label"] for p in expected]
        encoded = server.post("/v1/predict", json={"inputs": [base64.b64encode(recordings[0].read_bytes()).decode()]})
        assert encoded.json()["predictions"][0]["label"] == expected[0]["label"]
        garbage = server.post("/v1/predict", files=[("inputs", ("x.wav", b"RIFF not a recording"))])
        assert garbage.status_code == 422, garbage.text
        assert "inputs[0]: the recording is not a readable audio file" in garbage.json()["detail"]
        path_given = server.post("/v1/predict", json={"inputs": [str(recordings[0])]})
        assert path_given.status_code == 422 and "send each recording's bytes" in path_given.json()["detail"]
    finally:
        assert server.stop()[0] == 0
    (shard,) = (tmp_path / "runs" / "calls" / "served").glob("r0-*.jsonl")
    logged = read_lines(shard)
    assert len(logged) == 3 and all(record["audio"].startswith("sha256:") for record in logged)
    assert logged[0]["audio"] == logged[2]["audio"]  # the same recording, uploaded or base64
