"""Whether a change to our sampling kernels changes their machine code (SASS).

    python sgl-kernel/tools/same_sass.py [--base REV] [--arch 90]

Compiles the from-logits kernels (every logits dtype) and the fused seeded probs kernel
that logits_sampling.cuh includes, once from REV's sources (default HEAD) and once from
the working tree, with the extension's nvcc flags, and compares the two dumps:

- "identical": the same instructions at the same addresses;
- "reordered": every straight-line stretch (between branches, barriers, convergence
  points and branch targets) holds the same instructions, some in another order: the
  scheduler moved independent instructions, nothing else;
- otherwise the functions that differ, and their register counts: the change must run
  on a GPU (the suites, memcheck, the per-launch timer) before it lands.

For refactors made where no GPU is lent: "identical" or "reordered" means the kernels
compute what the GPU-verified ones compute. Needs nvcc and cuobjdump (CUDA toolkit, or
the copy in the triton wheel); runs on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections import Counter
from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parents[1]  # sgl-kernel/
REPO = KERNEL_DIR.parent

PROBE = """\
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include "sampling/logits_sampling.cuh"
#define SGL_LOGITS(T) template cudaError_t sgl_sampling::TopKTopPMinPSamplingFromLogits<T>( \\
    sgl_sampling::LogitsArgs<T>, uint32_t, void*, cudaStream_t);
SGL_LOGITS(float)
SGL_LOGITS(__half)
SGL_LOGITS(__nv_bfloat16)
"""


def extension_nvcc_flags() -> list[str]:
    """setup_musa.py's NVCC_FLAGS (importing it has no side effects), and C++20, the standard
    torch's builder uses after torch 2.10."""
    spec = importlib.util.spec_from_file_location("setup_musa", KERNEL_DIR / "setup_musa.py")
    setup_musa = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_musa)
    return [*setup_musa.NVCC_FLAGS, "-std=c++20"]


# Instructions after which, or at whose address, a straight-line stretch ends.
CONTROL = re.compile(r"\b(BRA|BRX|JMP|JMX|CALL|RET|EXIT|BSSY|BSYNC|BAR|WARPSYNC|BPT|YIELD)\b")
LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;?\s*/\* 0x[0-9a-f]+ \*/")
TARGET = re.compile(r"\b0x([0-9a-f]+)\b")


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(os.path.join("/usr/local/cuda/bin", name))
    if found:
        return found
    pattern = os.path.join(sysconfig.get_paths()["purelib"], "triton/backends/nvidia/bin", name)
    for path in glob.glob(pattern):
        return path
    sys.exit(f"same_sass: {name} not found (CUDA toolkit, or the triton wheel's copy)")


def sources_at(rev: str, into: Path) -> Path:
    """sgl-kernel/csrc as it is at `rev` (None: the working tree)."""
    if rev is None:
        return KERNEL_DIR / "csrc"
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "sgl-kernel/csrc"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "sgl-kernel" / "csrc"


def sass(csrc: Path, arch: str, work: Path) -> dict[str, list[tuple[int, str]]]:
    """{kernel: [(address, instruction)]} of the probe compiled against `csrc`."""
    probe, obj = work / "probe.cu", work / "probe.o"
    probe.write_text(PROBE)
    subprocess.run(
        [
            tool("nvcc"),
            "-I",
            str(csrc),
            *extension_nvcc_flags(),
            f"-gencode=arch=compute_{arch},code=sm_{arch}",
        ]
        + ["-c", str(probe), "-o", str(obj)],
        check=True,
    )
    dump = subprocess.run(
        [tool("cuobjdump"), "-sass", str(obj)], check=True, capture_output=True, text=True
    ).stdout
    kernels: dict[str, list[tuple[int, str]]] = {}
    current = None
    for line in dump.splitlines():
        if "Function :" in line:
            current = kernels.setdefault(line.split("Function :")[1].strip(), [])
        elif current is not None and (m := LINE.search(line)):
            current.append((int(m.group(1), 16), m.group(2)))
    return kernels


def stretches(code: list[tuple[int, str]]) -> list[Counter]:
    """The instructions of each straight-line stretch, as multisets, in order."""
    targets = set()
    for _, text in code:
        if CONTROL.search(text):
            targets.update(int(t, 16) for t in TARGET.findall(text))
    out, current = [], Counter()
    for address, text in code:
        if address in targets and current:
            out.append(current)
            current = Counter()
        current[text] += 1
        if CONTROL.search(text):
            out.append(current)
            current = Counter()
    out.append(current)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="HEAD", help="the revision to compare with")
    parser.add_argument("--arch", default="90", help="the sm_ architecture (default 90)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "base").mkdir()
        (tmp / "tree").mkdir()
        base = sass(sources_at(args.base, tmp / "base"), args.arch, tmp / "base")
        tree = sass(sources_at(None, tmp), args.arch, tmp / "tree")
    if base.keys() != tree.keys():
        print(f"different kernels: {sorted(base.keys() ^ tree.keys())}")
        return 1
    reordered, changed = [], []
    for name in sorted(base):
        if base[name] == tree[name]:
            continue
        if stretches(base[name]) == stretches(tree[name]):
            reordered.append(name)
        else:
            changed.append(name)
    for name in changed:
        print(f"changed: {name} ({len(base[name])} -> {len(tree[name])} instructions)")
    for name in reordered:
        print(f"reordered: {name}")
    if changed:
        return 1
    print(f"{'reordered' if reordered else 'identical'}: {len(base)} kernels, sm_{args.arch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
