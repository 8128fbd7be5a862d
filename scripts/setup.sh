#!/usr/bin/env bash
# Set up everything in .venv: torch 2.14.1 (CUDA 13.0 build), the dev tools of
# requirements-dev.txt, sgl-kernel built and installed editable (FlashInfer 0.5.3
# headers fetched and patched by setup_musa.py), and sglang installed editable.
# Safe to re-run: the extension is rebuilt only when its sources changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

echo "setup: installing requirements-dev.txt (torch 2.14.1 is large the first time)"
"${PIP[@]}" install -r requirements-dev.txt

so=$(ls sgl-kernel/python/sgl_kernel/common_ops*.so 2>/dev/null | head -n 1 || true)
changed=""
if [ -n "$so" ]; then
  changed=$(find sgl-kernel/csrc sgl-kernel/include 3rdparty/patches sgl-kernel/setup_musa.py \
    -newer "$so" -type f | head -n 1)
fi
if [ -z "$so" ] || [ -n "$changed" ]; then
  echo "setup: building sgl-kernel (FlashInfer sampling ops; about 2-3 minutes on 2 cores)"
  "${PIP[@]}" install --no-build-isolation --no-deps -e sgl-kernel
else
  echo "setup: sgl-kernel is up to date"
fi
"${PIP[@]}" install --no-build-isolation --no-deps -e python
echo "setup: done (.venv/bin/python)"
