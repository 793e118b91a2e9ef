"""The default run as PyTorch fp32, ONNX fp32 and ONNX int8, side by side.

One default run (all-MiniLM-L6-v2 + LoRA on the bundled Amazon sentences) is trained
here and exported twice with ``tunewright export format=onnx`` (fp32, then
``quantize=int8``); each export checks itself on the run's test split. The table
reports size on disk, batch-1 p50/p95 latency and batch-32 throughput on this CPU
(real IMDB/Yelp sentences), test accuracy and each form's bias verdicts (the run's audit
for PyTorch, the audits re-run on each artifact by the export), with ratios to PyTorch fp32 (the run's
merged model, the fastest PyTorch form of it, under ``torch.inference_mode``).

    python benchmarks/edge_export.py      # docs/benchmarks.md, docs/edge.md

Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from serve_throughput import sentences, tunewright


def speed(predict, texts: list[str]) -> dict[str, float]:
    """Batch-1 p50/p95 latency over 100 texts, and batch-32 throughput over 320."""
    predict(texts[:32])
    singles = []
    for text in texts[:100]:
        began = time.perf_counter()
        predict([text])
        singles.append(time.perf_counter() - began)
    sample = texts[:320]
    began = time.perf_counter()
    for start in range(0, len(sample), 32):
        predict(sample[start : start + 32])
    return {
        "p50_ms": float(np.percentile(singles, 50) * 1000),
        "p95_ms": float(np.percentile(singles, 95) * 1000),
        "batch32_per_s": len(sample) / (time.perf_counter() - began),
    }


def main() -> None:
    import torch

    from tunewright.edge_predictor import EdgePredictor
    from tunewright.predictor import load_run

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = sentences()
    with tempfile.TemporaryDirectory() as scratch:
        run = Path(scratch) / "edge"
        tunewright("train", f"paths.runs_dir={scratch}", "paths.run_id=edge", "trainer.progress_bar=false")
        for quantize in (None, "int8"):
            options = ["format=onnx", "override=edge benchmark", *([f"quantize={quantize}"] if quantize else [])]
            tunewright("export", f"run={run}", *options)
        merged = load_run(run, merged=True)
        merged.batch_size = 32
        merged_dir = Path(scratch) / "merged"
        merged.model.save_pretrained(merged_dir, safe_serialization=True)
        size = sum(path.stat().st_size for path in merged_dir.glob("*.safetensors"))

        def torch_predict(batch):
            with torch.inference_mode():
                return merged.probabilities(batch)

        first = json.loads((run / "export-onnx" / "edge.json").read_text())["check"]
        bias = json.loads((run / "reports" / "bias.json").read_text())
        rows = [
            {
                "variant": "PyTorch fp32",
                "size_mb": size / 2**20,
                "accuracy": first["pytorch"]["accuracy"],
                "verdicts": {name: audit["verdict"] for name, audit in bias["audits"].items()},
            }
        ]
        rows[0] |= speed(torch_predict, texts)
        for name, folder in (("ONNX fp32", "export-onnx"), ("ONNX int8", "export-onnx-int8")):
            record = json.loads((run / folder / "edge.json").read_text())
            edge = EdgePredictor(run / folder)
            rows.append(
                {
                    "variant": name,
                    "size_mb": record["check"]["size_bytes"] / 2**20,
                    "accuracy": record["check"]["artifact"]["accuracy"],
                    "agreement": record["check"]["agreement"],
                    "verdicts": record["audit"]["verdicts"],
                    **speed(edge.probabilities, texts),
                }
            )
    base = rows[0]
    print(
        "| variant | size MB | smaller | batch-1 p50 ms | p95 ms | faster at batch 1 | batch-32 inputs/s | vs PyTorch | test accuracy | bias verdicts |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['variant']} | {row['size_mb']:.1f} | {base['size_mb'] / row['size_mb']:.2f}x | {row['p50_ms']:.1f} | "
            f"{row['p95_ms']:.1f} | {base['p50_ms'] / row['p50_ms']:.2f}x | {row['batch32_per_s']:.0f} | "
            f"{row['batch32_per_s'] / base['batch32_per_s']:.2f}x | {row['accuracy']:.4f} | "
            + ", ".join(f"{name} {verdict}" for name, verdict in row["verdicts"].items())
            + " |"
        )
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
