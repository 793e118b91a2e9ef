#!/usr/bin/env bash
# Create .venv with tunewright and its test tools installed.
#
# torch is installed first, pinned to the 2.13.0 build: with no torch present, the open
# requirement of a dependency would pull a multi-GB CUDA build onto a CPU machine.
# Set TUNEWRIGHT_TORCH_INDEX to a wheel index (for example PyTorch's CPU index) where
# plain PyPI would choose a CUDA build for your platform.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch==2.13.0 ${TUNEWRIGHT_TORCH_INDEX:+--index-url "$TUNEWRIGHT_TORCH_INDEX"}
# DeepSpeed (trainer=deepspeed) is published as source whose build imports torch: it is
# built against the torch above (no build isolation), its ops compiled when first used.
.venv/bin/python -m pip install --quiet setuptools wheel
DS_BUILD_OPS=0 .venv/bin/python -m pip install --quiet --no-build-isolation 'deepspeed>=0.19.8,<0.20'
.venv/bin/python -m pip install --quiet -e '.[serve,tune,edge,studio,audio,deepspeed,test]'

# The studio's browser tests drive Debian's Chromium through Playwright (Playwright's own
# browser download is not needed). Installed here when missing and this is a root shell
# with apt; elsewhere, install chromium with your package manager.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  else
    echo "scripts/setup.sh: /usr/bin/chromium is missing: install chromium for the studio's browser tests" >&2
  fi
fi
