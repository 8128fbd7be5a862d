#!/usr/bin/env bash
# Prepare, on this machine (network, the project's .venv), every git-ignored folder that
# scripts/gpu_check.sh reads on the device tool's GPU machine (no network there; at most
# 64 MiB carried per call):
#   3rdparty/.cache/flashinfer-<v>/include   FlashInfer headers for the benchmark's baselines:
#                                             0.5.3, 0.5.3 + our patches 0001-0004, 0.7.2.post1
#   .whl-upstream/                            upstream SGLang's sampler import chain (device_wheels.sh)
#   .whl-model/a, .whl-model/b                the main job's model file split in two (94 MiB in
#                                             all) and the gguf wheel: carry a in one call and b
#                                             in the next on the same warm machine
# FlashInfer's own sampling suite (.fi-suite/test_sampling.py) is not fetched here: it is read
# from the public repository with the search tool (see sgl-kernel/tests/flashinfer_compat/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh  # .venv with the model installed (idempotent)
PY=.venv/bin/python
CACHE=3rdparty/.cache
HEADERS="sampling.cuh utils.cuh vec_dtypes.cuh math.cuh allocator.h exception.h"

fetch_headers() {  # fetch_headers VERSION DEST [extra headers...]
  local version=$1 dest=$2 tmp
  shift 2
  tmp=$(mktemp -d)
  rm -rf "$dest"
  $PY -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "flashinfer-python==$version"
  mkdir -p "$dest/include/flashinfer"
  for h in $HEADERS "$@"; do
    unzip -q -o -j "$tmp"/*.whl "flashinfer/data/include/flashinfer/$h" -d "$dest/include/flashinfer"
  done
  rm -rf "$tmp"
}
fetch_headers 0.5.3 "$CACHE/flashinfer-0.5.3"
rm -rf "$CACHE/flashinfer-0.5.3-sgl-0001-0004" && cp -r "$CACHE/flashinfer-0.5.3" "$CACHE/flashinfer-0.5.3-sgl-0001-0004"
for p in 3rdparty/patches/000[1-4]-*.patch; do
  patch -s -p1 --batch --forward -d "$CACHE/flashinfer-0.5.3-sgl-0001-0004" -i "$PWD/$p"
done
fetch_headers 0.7.2.post1 "$CACHE/flashinfer-0.7.2.post1" topk.cuh topk_common.cuh air_top_p.cuh
$PY -m pip download -q --no-deps --only-binary=:all: -d "$CACHE" flashinfer-python==0.5.3

bash scripts/device_wheels.sh

model=$($PY -c "import sglang.bench_sampler_model as m; print(m.find_model())")
rm -rf .whl-model && mkdir -p .whl-model/a .whl-model/b
head -c 41943040 "$model" > .whl-model/a/model.gguf.part1
tail -c +41943041 "$model" > .whl-model/b/model.gguf.part2
(cd "$(dirname "$model")" && sha256sum "$(basename "$model")") | awk '{print $1}' > .whl-model/b/SHA256
echo "$(basename "$model")" > .whl-model/b/NAME
$PY -m pip download -q --no-deps --only-binary=:all: -d .whl-model/a "gguf==0.19.0"
du -sh "$CACHE" .whl-upstream .whl-model/a .whl-model/b
