"""Memory of serving several adapter runs of one base: shared, or a merged copy each.

Two default runs (all-MiniLM-L6-v2 + LoRA on the bundled Amazon sentences, seeds 1
and 2, one epoch each) are trained here, then served three ways, each in its own
process, one after the other:

* ``one run``: ``tunewright serve`` of the first run alone (merged, as a single run is);
* ``two, shared base``: both runs in one process, the default (``serve.share_base=true``):
  one base, two adapters switched per batch;
* ``two, apart``: both runs with ``serve.share_base=false``: a merged copy each.

Each server answers the same requests (real IMDB and Yelp sentences, alternating
between the runs it serves, 8 clients at once); the table reports the server's
resident memory (RSS) once ready and its peak, requests per second, and ratios to
the single run.

    python benchmarks/serve_memory.py --requests 400      # docs/benchmarks.md

Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from serve_throughput import free_port, memory_mb, sentences, tunewright

CONCURRENCY = 8


def serve(runs: list[Path], port: int, *options: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "tunewright", "serve", *(f"run={run}" for run in runs), f"serve.port={port}"]
    process = subprocess.Popen(
        [*command, "override=memory benchmark", *options], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"serve exited: {process.stderr.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("serve did not become ready")


async def load(url: str, names: list[str], texts: list[str]) -> float:
    jobs = [(names[i % len(names)], text) for i, text in enumerate(texts)]

    async def client(http):
        while jobs:
            name, text = jobs.pop()
            (await http.post(f"/v1/models/{name}/predict", json={"inputs": [text]})).raise_for_status()

    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        began = time.perf_counter()
        await asyncio.gather(*[client(http) for _ in range(CONCURRENCY)])
        return len(texts) / (time.perf_counter() - began)


def measure(variant: str, runs: list[Path], texts: list[str], *options: str) -> dict:
    port = free_port()
    process = serve(runs, port, *options)
    try:
        ready = memory_mb(process.pid, "VmRSS")
        rate = asyncio.run(load(f"http://127.0.0.1:{port}", [run.name for run in runs], texts))
        peak = memory_mb(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    return {"variant": variant, "rss_ready_mb": ready, "peak_rss_mb": peak, "requests_per_s": rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = sentences()[: args.requests]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        runs = []
        for seed in (1, 2):
            name = f"queue{seed}"
            tunewright(
                "train",
                f"paths.runs_dir={scratch}",
                f"paths.run_id={name}",
                f"seed={seed}",
                "trainer.max_epochs=1",
                "trainer.progress_bar=false",
            )
            runs.append(scratch / name)
        rows = [
            measure("one run", runs[:1], texts),
            measure("two, shared base", runs, texts),
            measure("two, apart", runs, texts, "serve.share_base=false"),
        ]
    single = rows[0]
    print(f"{len(texts)} requests of one sentence each, {CONCURRENCY} clients, alternating between the runs\n")
    print("| served | RSS ready MB | vs one run | peak RSS MB | vs one run | requests/s | vs one run |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['variant']} | {row['rss_ready_mb']:.0f} | {row['rss_ready_mb'] / single['rss_ready_mb']:.2f}x | "
            f"{row['peak_rss_mb']:.0f} | {row['peak_rss_mb'] / single['peak_rss_mb']:.2f}x | "
            f"{row['requests_per_s']:.1f} | {row['requests_per_s'] / single['requests_per_s']:.2f}x |"
        )
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
