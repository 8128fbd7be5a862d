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
