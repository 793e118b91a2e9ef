"""``tunewright serve`` against the endpoint people write by hand, on the same model.

One default run (all-MiniLM-L6-v2 + LoRA on the bundled Amazon sentences, trained
here) is served three ways, one after the other, each in its own process:

* ``tunewright``: ``tunewright serve`` (dynamic batching, traffic log on);
* ``hand_written``: a FastAPI endpoint calling a transformers ``pipeline`` per request,
  on the run's merged export, at its best: a sync endpoint (FastAPI's thread pool) and
  the pipeline built once at start-up;
* ``offline``: the run's predictor on batches of 64, no HTTP: the ceiling.

Clients send one real test sentence per request (the shared IMDB and Yelp sentences)
at concurrency 1, 8 and 32. The table reports requests per second, p50/p95/p99 latency
and the server's peak RSS, with ratios to tunewright.

    python benchmarks/serve_throughput.py --requests 400      # docs/benchmarks.md
    python benchmarks/serve_throughput.py --requests 100      # a quick look

Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

SHARED = Path(__file__).parents[2] / "shared" / "data" / "sentiment_labelled_sentences"
CONCURRENCY = (1, 8, 32)

HAND_WRITTEN = """
import os
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline

classify = pipeline("text-classification", model=os.environ["MODEL_DIR"], top_k=None)
app = FastAPI()


class Request(BaseModel):
    inputs: list[str]


@app.post("/v1/predict")
def predict(request: Request):
    return {"predictions": classify(request.inputs)}
"""


def sentences() -> list[str]:
    lines = []
    for name in ("imdb_labelled.txt", "yelp_labelled.txt"):
        lines += [line.rsplit("\t", 1)[0].strip() for line in (SHARED / name).read_text().splitlines() if "\t" in line]
    return lines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tunewright(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunewright", *args], check=True, capture_output=True, text=True, **kwargs
    )


def memory_mb(pid: int, field: str = "VmHWM") -> float:
    """A process's memory from /proc in MB: its peak resident set (VmHWM), or its current one (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start(command: list[str], url: str, env: dict[str, str]) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"{' '.join(command[:5])} exited: {process.stderr.read()}")
        try:
            if httpx.post(f"{url}/v1/predict", json={"inputs": ["warm"]}, timeout=5).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"{command[:4]} did not start: {process.stderr.read()}")


async def load(url: str, texts: list[str], concurrency: int) -> tuple[float, np.ndarray]:
    queue = list(texts)
    latencies = []

    async def client(http):
        while queue:
            text = queue.pop()
            began = time.perf_counter()
            response = await http.post("/v1/predict", json={"inputs": [text]})
            response.raise_for_status()
            latencies.append(time.perf_counter() - began)

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=concurrency)) as http:
        began = time.perf_counter()
        await asyncio.gather(*[client(http) for _ in range(concurrency)])
        return len(texts) / (time.perf_counter() - began), np.array(latencies) * 1000


def measure(name: str, command: list[str], url: str, texts: list[str], **env: str) -> list[dict]:
    process = start(command, url, {**os.environ, **env})
    rows = []
    try:
        for concurrency in CONCURRENCY:
            rate, latency = asyncio.run(load(url, texts, concurrency))
            p50, p95, p99 = np.percentile(latency, [50, 95, 99])
            rows.append(
                {
                    "variant": name,
                    "concurrency": concurrency,
                    "requests_per_s": rate,
                    "p50_ms": p50,
                    "p95_ms": p95,
                    "p99_ms": p99,
                }
            )
        rss = memory_mb(process.pid)
        for row in rows:
            row["peak_rss_mb"] = rss
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    return rows


def offline(run: Path, texts: list[str]) -> float:
    from tunewright.predictor import load_run

    predictor = load_run(run)
    predictor.batch_size = 64
    predictor.predict(texts[:64])
    began = time.perf_counter()
    for start_at in range(0, len(texts), 64):
        predictor.predict(texts[start_at : start_at + 64])
    return len(texts) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = sentences()[: args.requests]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        tunewright("train", f"paths.runs_dir={scratch}", "paths.run_id=bench", "trainer.progress_bar=false")
        run = scratch / "bench"
        merged = scratch / "merged"
        tunewright("export", f"run={run}", "merged=true", f"out={merged}", "override=serving benchmark")
        (scratch / "hand_written.py").write_text(HAND_WRITTEN)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        rows = measure(
            "tunewright",
            [
                sys.executable,
                "-m",
                "tunewright",
                "serve",
                f"run={run}",
                f"serve.port={port}",
                "override=serving benchmark",
            ],
            url,
            texts,
        )
        rows += measure(
            "hand_written",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(scratch),
                "hand_written:app",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            url,
            texts,
            MODEL_DIR=str(merged),
        )
        ceiling = offline(run, texts)
    by = {(row["variant"], row["concurrency"]): row for row in rows}
    print(f"{len(texts)} requests of one sentence each; offline batched ceiling {ceiling:.1f} inputs/s\n")
    print("| variant | concurrency | requests/s | vs tunewright | p50 ms | p95 ms | p99 ms | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        ratio = row["requests_per_s"] / by[("tunewright", row["concurrency"])]["requests_per_s"]
        print(
            f"| {row['variant']} | {row['concurrency']} | {row['requests_per_s']:.1f} | {ratio:.2f}x | "
            f"{row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {row['p99_ms']:.1f} | {row['peak_rss_mb']:.0f} |"
        )
    at_32 = by[("tunewright", 32)]["requests_per_s"]
    print(f"\ntunewright at concurrency 32: {at_32 / ceiling:.0%} of the offline ceiling")
    print(json.dumps({"rows": rows, "offline_inputs_per_s": ceiling}))


if __name__ == "__main__":
    main()
