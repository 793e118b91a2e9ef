#!/usr/bin/env bash
# The GPU check on a machine without network: install what its image lacks from a folder
# of wheels (docs/benchmarks.md, "The GPU check", says how to prepare it), then run
# benchmarks/gpu_check.py. Usage: bash benchmarks/gpu_check.sh <wheels folder> <summary.json>
set -euo pipefail
wheels=${1:?usage: gpu_check.sh <wheels folder> <summary.json>}
out=${2:?usage: gpu_check.sh <wheels folder> <summary.json>}
cd "$(dirname "$0")/.."
python -m pip install --quiet --no-index --find-links "$wheels" \
    hydra-core omegaconf antlr4-python3-runtime bitsandbytes
# DeepSpeed where its wheels travelled (the check records its part as skipped otherwise)
if compgen -G "$wheels/deepspeed-*.whl" > /dev/null; then
    python -m pip install --quiet --no-index --find-links "$wheels" deepspeed
fi
python -m pip install --quiet --no-index --no-deps --no-build-isolation -e .
python benchmarks/gpu_check.py --out "$out"
