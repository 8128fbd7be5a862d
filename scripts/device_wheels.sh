#!/usr/bin/env bash
# Download, for the device tool's GPU machine (Python 3.12, x86_64, no network there), the
# wheels of upstream SGLang's sampler import chain that its image lacks, into .whl-upstream
# (git-ignored; gpu_check.sh installs them for the `upstream` step). Which pins the image
# lacks: test/upstream/requirements.txt minus the packages the device image lists
# (the device tool's KINDS.md, read 2026-11-17; httpx2, httpcore2 and truststore were
# missed once, 2026-11-29, and the step could not import openai).
set -euo pipefail
cd "$(dirname "$0")/.."
on_image=" aiohappyeyeballs aiohttp aiosignal anyio attrs certifi frozenlist h11 huggingface-hub
  idna multidict propcache psutil regex requests safetensors sentencepiece tokenizers torchvision
  tqdm transformers urllib3 yarl "
mkdir -p .whl-upstream
grep -Ev '^\s*(#|$)' test/upstream/requirements.txt | while read -r pin; do
  name=${pin%%==*}
  [[ "$on_image" == *" $name "* || "$on_image" == *" $name"$'\n'* ]] && continue
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_26_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl-upstream "$pin"
done
du -sh .whl-upstream
