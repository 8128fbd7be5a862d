#!/usr/bin/env bash
# README command 2 (and CI's .ci/run): set up, lint, run every test suite.
# On a machine with a GPU the same suites also run the GPU build of the ops.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "test: pre-commit (ruff, clang-format, codespell) on all files"
pre-commit run --all-files --show-diff-on-failure

echo "test: sgl-kernel ops, build configuration and MUSA porting lint; SGLang sampler"
python -m pytest -q -p no:cacheprovider sgl-kernel/tests test/srt

# Upstream SGLang's own Sampler on our ops: the pinned wheels go into a git-ignored
# cache (reinstalled only when the pin list changes) and the suite runs in a pytest
# process of its own, upstream's sglang first on the path.
upstream=.cache/upstream-sglang
stamp="$upstream/.installed-$(sha256sum test/upstream/requirements.txt | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "test: installing upstream sglang and its sampler's import chain into $upstream"
  rm -rf "$upstream"
  python -m pip --disable-pip-version-check -q install --no-deps --no-compile \
    --target "$upstream" -r test/upstream/requirements.txt
  touch "$stamp"
fi
echo "test: upstream SGLang 0.5.23's Sampler (MUSA branch) on our sgl_kernel"
PYTHONPATH="$PWD/$upstream" python -m pytest -q -p no:cacheprovider -W ignore::UserWarning \
  test/upstream
