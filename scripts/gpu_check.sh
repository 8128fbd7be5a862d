#!/usr/bin/env bash
# Build sgl-kernel for CUDA and run the GPU acceptance checks in one go (the lent
# H100 of the device tool, or any CUDA machine): GPU test suites, compute-sanitizer on
# invalid rows, the benchmark (SKIP_BENCH=1 skips it) and the main job on the GPU.
# Logs and CSV go to $OUT (default: results-local/).
#   carry: 3rdparty/.cache (the FlashInfer wheel, no network there) and .whl (pytest)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results-local}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
status=0
step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/device.txt"
date -u +%Y-%m-%d >> "$OUT/device.txt"

if ! $PY -c "import pytest" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi

step "build (editable install)"
if ! $PY -m pip install -q --no-build-isolation --no-deps --no-index -e sgl-kernel > "$OUT/build.log" 2>&1; then
  echo "editable install failed (see build.log); building in place"
  (cd sgl-kernel && $PY setup_musa.py build_ext --inplace >> "../$OUT/build.log" 2>&1) || { tail -30 "$OUT/build.log"; exit 1; }
  export PYTHONPATH=$PWD/sgl-kernel/python:${PYTHONPATH:-}
fi
tail -3 "$OUT/build.log"
export PYTHONPATH=$PWD/python:${PYTHONPATH:-}  # sglang (the sampler) from this tree

step "compute-sanitizer memcheck on NaN / zero rows"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
timeout 300 "$SAN" --tool memcheck --error-exitcode 1 $PY sgl-kernel/tests/sanitize_invalid_rows.py \
  > "$OUT/sanitizer.log" 2>&1 || status=1
tail -6 "$OUT/sanitizer.log"

if [ -z "${SKIP_BENCH:-}" ]; then
  step "benchmark"
  $PY sgl-kernel/benchmark/bench_sampling.py --csv "$OUT/bench.csv" > "$OUT/bench.log" 2>&1 || status=1
  tail -40 "$OUT/bench.log"
fi

step "main job on the GPU"
$PY -m sglang.bench_sampler --device cuda --quiet --csv "$OUT/main_job.csv" > "$OUT/main_job.log" 2>&1 || status=1
cat "$OUT/main_job.log"

step "kernel tests"
$PY -m pytest --version
$PY -m pytest sgl-kernel/tests -q -p no:cacheprovider 2>&1 | tee "$OUT/kernel_tests.log" | tail -15 || status=1

if [ -d test/srt ]; then
  step "sampler tests"
  $PY -m pytest test/srt -q -p no:cacheprovider 2>&1 | tee "$OUT/sampler_tests.log" | tail -15 || status=1
fi

step "done, status $status"
exit $status
