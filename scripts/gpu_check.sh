#!/usr/bin/env bash
# Build sgl-kernel for CUDA and run the GPU acceptance checks (the lent H200 of the device
# tool, or any CUDA machine). Logs, JSON and CSV go to $OUT (default: results-local/).
#
#   STEPS="build tests hazards sanitizer identity upstream flashinfer bench mainjob" (default: all;
#   "baselines" alone only compiles the benchmark's FlashInfer launchers, for a later call;
#   "samplerstep", not in the default: issue #9's Sampler step, today's kernels vs the fused
#   op, with its targets, into $OUT/sampler_step/; build in the same call or an earlier one;
#   "forward", not in the default: issue #16's benchmark, Sampler.forward per request type
#   and the op grid against FlashInfer 0.7.2's launchers, with its targets, into
#   $OUT/forward/ in about 8 minutes; FORWARD_ARGS overrides its options, e.g. "--quick";
#   "racecheck", not in the default: compute-sanitizer's shared-memory race check over one
#   from-logits case per kernel instance; added after a review found a missing barrier that
#   memcheck and the suites passed; on the H200 (2026-12-04, fifth session) about 35 s and
#   0 hazards, the Gumbel draws' block floor read while other threads raise it included)
#
# Each step runs in its own process with a timeout, so a hang or a sticky GPU fault fails
# that step, not the script. Carried folders it uses when present (no network there):
#   3rdparty/.cache                         the FlashInfer 0.5.3 wheel; for the benchmark's
#     flashinfer-<version>/include            baselines, each release's headers
#   .whl-upstream                           wheels of upstream SGLang's sampler import chain
#                                           (scripts/device_wheels.sh downloads them)
#   .fi-suite/test_sampling.py              FlashInfer v0.5.3's own sampling suite
#   .whl-model/a, then .whl-model/b         the model job's file in two parts (two calls on
#                                           one warm machine: STEPS="modelpart1 ..." carrying
#                                           a, then STEPS="mainjob" carrying b)
# scripts/device_prepare.sh makes all of these.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results-local}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 CUDA_HOME=${CUDA_HOME:-/usr/local/cuda} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
PY=${PYTHON:-python3}
STEPS=${STEPS:-build tests hazards sanitizer identity upstream flashinfer bench mainjob}
CACHE=$PWD/3rdparty/.cache
STARTED=$(date +%s)
status=0
step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }
want() { [[ " $STEPS " == *" $1 "* ]]; }
run() {  # run LOG TIMEOUT CMD...: tee the output, record a failure
  local log=$1 limit=$2
  shift 2
  timeout "$limit" "$@" > "$OUT/$log" 2>&1 || { echo "FAILED (exit $?): $*"; status=1; }
  tail -8 "$OUT/$log"
}

step "machine"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  date -u +%Y-%m-%d
  git log -1 --format='tree at %h %s' 2>/dev/null || true
} | tee "$OUT/device.txt"

baselines=()
for v in 0.5.3 0.5.3-sgl-0001-0004 0.7.2.post1; do
  [ -d "$CACHE/flashinfer-$v/include" ] && baselines+=(--flashinfer "$v=$CACHE/flashinfer-$v/include")
done
fi072=()  # the Sampler step compares with FlashInfer 0.7.2's launchers only
[ -d "$CACHE/flashinfer-0.7.2.post1/include" ] && fi072=(--flashinfer "0.7.2.post1=$CACHE/flashinfer-0.7.2.post1/include")
to_build=()
if want bench || want baselines; then to_build=("${baselines[@]}"); elif want samplerstep || want forward; then to_build=("${fi072[@]}"); fi
if [ ${#to_build[@]} -gt 0 ]; then
  # FlashInfer's own launchers compile in the background while the rest runs.
  (cd sgl-kernel/benchmark && $PY bench_sampling.py --build-only "${to_build[@]}") \
    > "$OUT/flashinfer_baselines_build.log" 2>&1 &
fi
if want identity; then
  # The patches that must change no result: 0005 (warp width), 0009 (one reduction a round).
  (for patch in 0005 0009; do
    timeout 580 $PY sgl-kernel/tests/gpu/check_patch_identity.py --patch $patch || echo "FAILED"
  done > "$OUT/patch_identity.log" 2>&1) &
fi

if want build; then
  step "build (editable install)"
  if ! $PY -m pip install -q --no-build-isolation --no-deps --no-index -e sgl-kernel > "$OUT/build.log" 2>&1; then
    echo "editable install failed (see build.log); building in place"
    (cd sgl-kernel && $PY setup_musa.py build_ext --inplace >> "../$OUT/build.log" 2>&1) || { tail -30 "$OUT/build.log"; exit 1; }
  fi
fi
export PYTHONPATH=$PWD/sgl-kernel/python:${PYTHONPATH:-}

if want hazards; then
  step "hazard suite on the GPU (every case in a child process with a timeout)"
  SGL_HAZARD_RESULTS=$OUT/hazards.json run hazard_tests.log 400 \
    $PY -m pytest -q -p no:cacheprovider sgl-kernel/tests/test_hazards.py -k cuda
fi
if want tests; then
  step "kernel and sampler suites on the GPU"
  run kernel_tests.log 400 $PY -m pytest -q -p no:cacheprovider sgl-kernel/tests \
    --ignore=sgl-kernel/tests/test_hazards.py -k "cuda or gpu"
  PYTHONPATH=$PWD/python:$PYTHONPATH run sampler_tests.log 300 \
    $PY -m pytest -q -p no:cacheprovider test/srt -k cuda
fi
if want sanitizer; then
  step "compute-sanitizer memcheck over the hazard cases"
  SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  run sanitizer.log 400 "$SAN" --tool memcheck --error-exitcode 1 $PY sgl-kernel/tests/sanitize_hazards.py
fi
if want racecheck; then
  step "compute-sanitizer racecheck: batch 1 (plain instances), 8 rows (early list), 64 rows (draw above the bin)"
  SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  run racecheck.log 500 "$SAN" --tool racecheck --error-exitcode 1 $PY sgl-kernel/tests/sanitize_hazards.py \
    logits-batch-1-v4097 logits-hostile-rows-v32768 logits-hostile-rows-v4097
fi
if want upstream && [ -d .whl-upstream ]; then
  step "upstream SGLang 0.5.23's Sampler on our ops"
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/upstream-site .whl-upstream/*.whl
  PYTHONPATH=/tmp/upstream-site:$PYTHONPATH run upstream_client.log 300 \
    $PY -m pytest -q -p no:cacheprovider -W ignore::UserWarning test/upstream
fi
if want flashinfer && [ -f .fi-suite/test_sampling.py ]; then
  step "FlashInfer v0.5.3's own sampling suite through the flashinfer.sampling shim"
  run flashinfer_suite.log 500 $PY sgl-kernel/tests/flashinfer_compat/run_flashinfer_suite.py
fi
if want identity; then
  step "patches 0005 and 0009: bit-identical samples with and without each"
  wait
  grep -E "^(PASS|FAIL)" "$OUT/patch_identity.log"
  grep -q "^FAIL" "$OUT/patch_identity.log" && status=1
fi
if want bench; then
  step "benchmark"
  wait
  run bench.log 560 $PY sgl-kernel/benchmark/bench_sampling.py ${BENCH_ARGS:---batches 1 64 256 --vocabs 128256 --runs 200} \
    "${baselines[@]}" --csv "$OUT/bench.csv" --markdown "$OUT/bench.md"
fi
if want samplerstep; then
  step "Sampler step, issue #9: today's kernels vs the fused op, with the targets"
  wait  # the FlashInfer launchers' background build
  PYTHONPATH=$PWD/python:$PYTHONPATH run sampler_step.log 560 \
    $PY sgl-kernel/benchmark/bench_sampler_step.py ${SAMPLER_STEP_ARGS:-} "${fi072[@]}" \
    --out "$OUT/sampler_step"
fi
if want forward; then
  step "Sampler.forward and the op grid, issue #16, with the targets"
  wait  # the FlashInfer launchers' background build
  # Its time budget ends FORWARD_END_S (default 560) seconds after this script started, at
  # most 420 s: what is left then is skipped with a note and the report is still written
  # inside the device tool's 600 s per call, even after a build in the same call.
  budget=$(( ${FORWARD_END_S:-560} - ($(date +%s) - STARTED) - 45 ))
  (( budget > 420 )) && budget=420
  (( budget < 60 )) && budget=60
  PYTHONPATH=$PWD/python:$PYTHONPATH run forward.log 580 \
    $PY sgl-kernel/benchmark/bench_sampler_forward.py --budget-s $budget ${FORWARD_ARGS:-} \
    "${fi072[@]}" --out "$OUT/forward"
fi
PARTS=/tmp/sgl-model-parts  # outside the checkout: kept between calls on a warm machine
if want modelpart1 && [ -d .whl-model/a ]; then
  step "main job's model, part 1 kept for the next call"
  mkdir -p $PARTS && cp .whl-model/a/* $PARTS/
fi
if want mainjob; then
  step "main job on the GPU"
  job=(--job synthetic)
  if [ -f $PARTS/model.gguf.part1 ] && [ -d .whl-model/b ]; then
    model=$PARTS/$(cat .whl-model/b/NAME)
    cat $PARTS/model.gguf.part1 .whl-model/b/model.gguf.part2 > "$model"
    if [ "$(sha256sum "$model" | cut -d' ' -f1)" = "$(cat .whl-model/b/SHA256)" ]; then
      $PY -m pip install -q --no-index --no-deps --target /tmp/model-site $PARTS/gguf-*.whl
      export PYTHONPATH=/tmp/model-site:$PYTHONPATH SGLANG_BENCH_MODEL=$model
      job=()
    else
      echo "model parts do not join to the recorded sha256: running the synthetic job"
    fi
  fi
  PYTHONPATH=$PWD/python:$PYTHONPATH run main_job.log 500 \
    $PY -m sglang.bench_sampler --device cuda "${job[@]}" ${MAINJOB_ARGS:-} \
    --csv "$OUT/main_job.csv" --plot "$OUT/main_job.png"
fi

wait  # background builds (baselines) finish before the machine is left
step "done, status $status"
exit $status
