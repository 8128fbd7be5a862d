#!/usr/bin/env bash
# README command 1: set up, then sample a realistic batch through SGLang's Sampler with
# every backend on this machine (CPU, and the kernels on a GPU if one is present) and
# print the check table. Arguments go to `python -m sglang.bench_sampler`, e.g.
#   bash scripts/main.sh --csv results.csv --plot results.png
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m sglang.bench_sampler "$@"
