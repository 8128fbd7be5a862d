#!/usr/bin/env bash
# README command 1: set up, then generate text with SmolLM2-135M through SGLang's Sampler
# with every backend on this machine's best device (the kernels on a GPU if one is
# present), print the texts, the timing table and the checks. Arguments go to
# `python -m sglang.bench_sampler`, e.g.
#   bash scripts/main.sh --csv results.csv --plot results.png
#   bash scripts/main.sh --job synthetic      # the synthetic-logit job, no model needed
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m sglang.bench_sampler "$@"
