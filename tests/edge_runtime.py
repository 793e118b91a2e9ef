"""Run an ONNX export's EdgePredictor in a fresh interpreter where PyTorch and transformers
cannot be imported, as on a device that has neither."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

# An fp32 artifact is checked against its run to 1e-4 or closer, so the run computes in
# fp32 too: a run evaluated in bf16 (precision=auto on a CPU with native bf16) differs
# from any fp32 graph by bf16's rounding.
FP32_RUN = "trainer.precision=fp32"


def predict_without_pytorch(folder: Path, inputs: list[Any]) -> list[dict[str, Any]]:
    """``open_export(folder).predict(inputs)``, answered by a process without PyTorch."""
    script = (
        "import sys, json\n"
        "sys.modules['torch'] = None; sys.modules['transformers'] = None  # importing either fails\n"
        "from tunewright.edge_predictor import open_export\n"
        f"print(json.dumps(open_export({str(folder)!r}).predict({inputs!r})))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
