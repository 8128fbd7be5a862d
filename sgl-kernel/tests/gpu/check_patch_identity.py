"""Proof on CUDA that a patch which should change no result changes none.

    python sgl-kernel/tests/gpu/check_patch_identity.py [--patch 0005] [--build-dir DIR]
        [--build-only]

Two patches claim bit-identical results on CUDA: 0005 (width-32 warp shuffles, for
Moore Threads GPUs' 128-lane warps) and 0009 (one block reduction per rejection round).
Stages FlashInfer 0.5.3's headers twice (every patch in 3rdparty/patches, and the same
set without the one under test), builds one small torch extension against each (raw
pybind launchers over FlashInfer's own sampling launchers, the nvcc flags and cuRAND
include logic of setup_musa.py), builds both at once, and runs every sampling op on the
same inputs with the same Philox seed/offset, deterministic=True and False. Samples must
be equal and renormalised/masked outputs bit-equal. Each variant is also run twice, so a
difference that is not reproducible within one build is reported as such.

Prints one line per case and a PASS/FAIL summary; exit status 1 on any mismatch. Needs
a CUDA GPU, nvcc and the FlashInfer wheel in 3rdparty/.cache (or network, or
FLASHINFER_SOURCE_DIR). About 2 minutes on 16 cores (the two builds run in parallel).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parents[2]

BINDINGS_H = r"""
#pragma once
#include <ATen/ATen.h>
#include <optional>
using OptT = std::optional<at::Tensor>;
// IDENTITY_NS and the `flashinfer` namespace are renamed per variant (-D flags), so the
// two modules share no symbol and neither can run the other's kernels.
namespace IDENTITY_NS {
void sampling_from_probs(at::Tensor probs, at::Tensor out, OptT idx, bool det, int64_t seed, int64_t off);
void sampling_from_logits(at::Tensor logits, at::Tensor out, OptT idx, bool det, int64_t seed, int64_t off);
void top_k_sampling(at::Tensor probs, at::Tensor out, OptT idx, OptT k_arr, int64_t k, bool det, int64_t seed, int64_t off);
void top_p_sampling(at::Tensor probs, at::Tensor out, OptT idx, OptT p_arr, double p, bool det, int64_t seed, int64_t off);
void min_p_sampling(at::Tensor probs, at::Tensor out, OptT idx, OptT p_arr, double p, bool det, int64_t seed, int64_t off);
void top_k_top_p_sampling(at::Tensor probs, at::Tensor out, OptT idx, OptT k_arr, int64_t k, OptT p_arr, double p, bool det, int64_t seed, int64_t off);
void top_p_renorm(at::Tensor probs, at::Tensor out, OptT p_arr, double p);
void top_k_renorm(at::Tensor probs, at::Tensor out, OptT k_arr, int64_t k);
void top_k_mask_logits(at::Tensor logits, at::Tensor out, OptT k_arr, int64_t k);
}  // namespace IDENTITY_NS
"""

COMMON = r"""
#include <ATen/cuda/CUDAContext.h>
#include <flashinfer/sampling.cuh>
#include "bindings.h"
namespace {
// Messages are plain strings: streaming numbers through TORCH_CHECK crashes on the
// device image's toolchain (see csrc/sampling/sampling.cu).
void check(cudaError_t status, const char* op) {
  TORCH_CHECK(status == cudaSuccess, op, ": ", cudaGetErrorString(status));
}
cudaStream_t stream() { return at::cuda::getCurrentCUDAStream(); }
int* ints(const OptT& t) { return t.has_value() ? t->data_ptr<int>() : nullptr; }
float* floats(const OptT& t) { return t.has_value() ? t->data_ptr<float>() : nullptr; }
uint32_t rows(const at::Tensor& out) { return static_cast<uint32_t>(out.size(0)); }
uint32_t cols(const at::Tensor& probs) { return static_cast<uint32_t>(probs.size(1)); }
}  // namespace
"""

UNIT_SAMPLING = (
    COMMON
    + r"""
using namespace flashinfer::sampling;
namespace IDENTITY_NS {
void sampling_from_probs(at::Tensor probs, at::Tensor out, OptT idx, bool det, int64_t seed, int64_t off) {
  check(SamplingFromProb<float, int>(probs.data_ptr<float>(), out.data_ptr<int>(), ints(idx), rows(out),
                                     cols(probs), det, seed, off, stream()), "SamplingFromProb");
}
void sampling_from_logits(at::Tensor logits, at::Tensor out, OptT idx, bool det, int64_t seed, int64_t off) {
  check(SamplingFromLogits<float, int>(logits.data_ptr<float>(), out.data_ptr<int>(), ints(idx), rows(out),
                                       cols(logits), det, seed, off, stream()), "SamplingFromLogits");
}
void top_k_sampling(at::Tensor probs, at::Tensor out, OptT idx, OptT k_arr, int64_t k, bool det, int64_t seed, int64_t off) {
  check(TopKSamplingFromProb<float, int>(probs.data_ptr<float>(), out.data_ptr<int>(), ints(idx), ints(k_arr),
                                         rows(out), k, cols(probs), det, seed, off, stream()), "TopKSamplingFromProb");
}
}  // namespace IDENTITY_NS
"""
)

UNIT_FILTERED = (
    COMMON
    + r"""
using namespace flashinfer::sampling;
namespace IDENTITY_NS {
void top_p_sampling(at::Tensor probs, at::Tensor out, OptT idx, OptT p_arr, double p, bool det, int64_t seed, int64_t off) {
  check(TopPSamplingFromProb<float, int>(probs.data_ptr<float>(), out.data_ptr<int>(), ints(idx), floats(p_arr),
                                         rows(out), static_cast<float>(p), cols(probs), det, seed, off, stream()),
        "TopPSamplingFromProb");
}
void min_p_sampling(at::Tensor probs, at::Tensor out, OptT idx, OptT p_arr, double p, bool det, int64_t seed, int64_t off) {
  check(MinPSamplingFromProb<float, int>(probs.data_ptr<float>(), floats(p_arr), out.data_ptr<int>(), ints(idx),
                                         rows(out), static_cast<float>(p), cols(probs), det, seed, off, stream()),
        "MinPSamplingFromProb");
}
void top_k_top_p_sampling(at::Tensor probs, at::Tensor out, OptT idx, OptT k_arr, int64_t k, OptT p_arr, double p,
                          bool det, int64_t seed, int64_t off) {
  check(TopKTopPSamplingFromProb<float, int>(probs.data_ptr<float>(), ints(k_arr), floats(p_arr), out.data_ptr<int>(),
                                             ints(idx), rows(out), static_cast<int>(k), static_cast<float>(p),
                                             cols(probs), det, seed, off, stream()),
        "TopKTopPSamplingFromProb");
}
}  // namespace IDENTITY_NS
"""
)

UNIT_RENORM = (
    COMMON
    + r"""
using namespace flashinfer::sampling;
namespace IDENTITY_NS {
void top_p_renorm(at::Tensor probs, at::Tensor out, OptT p_arr, double p) {
  check(TopPRenormProb<float>(probs.data_ptr<float>(), out.data_ptr<float>(), floats(p_arr), rows(out),
                              static_cast<float>(p), cols(probs), stream()), "TopPRenormProb");
}
void top_k_renorm(at::Tensor probs, at::Tensor out, OptT k_arr, int64_t k) {
  check(TopKRenormProb<float, int>(probs.data_ptr<float>(), out.data_ptr<float>(), ints(k_arr), rows(out), k,
                                   cols(probs), stream()), "TopKRenormProb");
}
void top_k_mask_logits(at::Tensor logits, at::Tensor out, OptT k_arr, int64_t k) {
  check(TopKMaskLogits<float, int>(logits.data_ptr<float>(), out.data_ptr<float>(), ints(k_arr), rows(out), k,
                                   cols(logits), stream()), "TopKMaskLogits");
}
}  // namespace IDENTITY_NS
"""
)

MODULE_CPP = r"""
#include <torch/extension.h>
#include "bindings.h"
#define IDENTITY_STR2(x) #x
#define IDENTITY_STR(x) IDENTITY_STR2(x)
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using namespace IDENTITY_NS;
  m.def("variant", [] { return std::string(IDENTITY_STR(IDENTITY_NS)); });
  m.def("sampling_from_probs", &sampling_from_probs);
  m.def("sampling_from_logits", &sampling_from_logits);
  m.def("top_k_sampling", &top_k_sampling);
  m.def("top_p_sampling", &top_p_sampling);
  m.def("min_p_sampling", &min_p_sampling);
  m.def("top_k_top_p_sampling", &top_k_top_p_sampling);
  m.def("top_p_renorm", &top_p_renorm);
  m.def("top_k_renorm", &top_k_renorm);
  m.def("top_k_mask_logits", &top_k_mask_logits);
}
"""


def load_setup_musa():
    spec = importlib.util.spec_from_file_location("setup_musa", KERNEL_DIR / "setup_musa.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_sources(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bindings.h").write_text(BINDINGS_H)
    files = {
        "sampling.cu": UNIT_SAMPLING,
        "filtered.cu": UNIT_FILTERED,
        "renorm.cu": UNIT_RENORM,
        "module.cpp": MODULE_CPP,
    }
    for name, text in files.items():
        (directory / name).write_text(text)
    return [directory / name for name in files]


def build_spec(sm, work: Path, variant: str, patches) -> dict:
    shutil.rmtree(work / variant / "flashinfer", ignore_errors=True)  # a reused --build-dir
    include = sm.stage_flashinfer_into(work / variant / "flashinfer", patches)
    sources = write_sources(work / variant / "src")
    renames = [
        f"-Dflashinfer=flashinfer_{variant}",
        f"-DIDENTITY_NS=identity_{variant}",
    ]
    return {
        "name": f"patch_identity_{variant}",
        "sources": [str(s) for s in sources],
        "extra_include_paths": [str(include), str(work / variant / "src")]
        + sm._curand_include_dirs(),
        "extra_cflags": list(sm.CXX_FLAGS) + renames,
        "extra_cuda_cflags": list(sm.NVCC_FLAGS) + renames,
        "build_directory": str(work / variant / "build"),
    }


BUILD_SNIPPET = """
import json, sys
from torch.utils.cpp_extension import load
spec = json.loads(sys.argv[1])
load(verbose=False, **spec)
"""


def build_both(specs: dict) -> None:
    """Compile the variants in two processes at once (each uses ninja's parallelism)."""
    import json

    env = dict(os.environ, MAX_JOBS=str(max(2, (os.cpu_count() or 2) // 2)))

    def build(spec):
        Path(spec["build_directory"]).mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-c", BUILD_SNIPPET, json.dumps(spec)]
        return subprocess.run(cmd, capture_output=True, text=True, env=env)

    with concurrent.futures.ThreadPoolExecutor(len(specs)) as pool:
        results = dict(zip(specs, pool.map(build, specs.values())))
    for variant, result in results.items():
        if result.returncode != 0:
            sys.exit(
                f"build of {variant} failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
            )


# ----------------------------------------------------------------------------- cases


def make_rows(torch, batch, vocab, kind, generator):
    logits = torch.randn(batch, vocab, generator=generator, device="cuda")
    if kind == "peaked":
        logits = logits * 8
    elif kind == "flat":
        logits = logits * 0.05
    elif kind == "sparse":  # many exact zeros, as after a top-k filter
        keep = torch.rand(batch, vocab, generator=generator, device="cuda") < 0.02
        logits = torch.where(keep, logits, torch.full_like(logits, float("-inf")))
        logits[:, 0] = 0.0
    probs = torch.softmax(logits, dim=-1).contiguous()
    return probs, torch.log(probs).contiguous()


def cases(torch):
    """(name, op, args builder) tuples; every builder returns fresh outputs."""
    generator = torch.Generator(device="cuda").manual_seed(20261129)
    shapes = [(1, 32000), (7, 1001), (64, 128256), (33, 151936)]
    kinds = ["normal", "peaked", "flat", "sparse"]
    seeds = [(0, 0), (123456789, 4096), (2**40 + 7, 2**33)]
    result = []
    for (batch, vocab), kind in zip(shapes, kinds):
        probs, logits = make_rows(torch, batch, vocab, kind, generator)
        idx = torch.randint(0, batch, (batch + 3,), generator=generator, device="cuda").int()
        k_arr = torch.randint(1, 200, (batch,), generator=generator, device="cuda").int()
        p_arr = torch.rand(batch, generator=generator, device="cuda") * 0.95 + 0.04
        minp_arr = torch.rand(batch, generator=generator, device="cuda") * 0.3
        tag = f"{batch}x{vocab}-{kind}"
        for det in (True, False):
            for seed, offset in seeds:
                rng = (det, seed, offset)
                suffix = f"{tag}-det{int(det)}-seed{seed}-off{offset}"
                n, ni = batch, batch + 3
                result += [
                    (
                        f"sampling_from_probs-{suffix}",
                        "sampling_from_probs",
                        (probs, n, None) + rng,
                    ),
                    (
                        f"sampling_from_probs-indices-{suffix}",
                        "sampling_from_probs",
                        (probs, ni, idx) + rng,
                    ),
                    (
                        f"sampling_from_logits-{suffix}",
                        "sampling_from_logits",
                        (logits, n, None) + rng,
                    ),
                    (f"top_k-scalar-{suffix}", "top_k_sampling", (probs, n, None, None, 50) + rng),
                    (f"top_k-rows-{suffix}", "top_k_sampling", (probs, n, None, k_arr, 0) + rng),
                    (f"top_p-scalar-{suffix}", "top_p_sampling", (probs, n, None, None, 0.9) + rng),
                    (
                        f"top_p-rows-indices-{suffix}",
                        "top_p_sampling",
                        (probs, ni, idx, p_arr, 0.0) + rng,
                    ),
                    (
                        f"min_p-scalar-{suffix}",
                        "min_p_sampling",
                        (probs, n, None, None, 0.05) + rng,
                    ),
                    (
                        f"min_p-rows-{suffix}",
                        "min_p_sampling",
                        (probs, n, None, minp_arr, 0.0) + rng,
                    ),
                    (
                        f"top_k_top_p-scalar-{suffix}",
                        "top_k_top_p_sampling",
                        (probs, n, None, None, 40, None, 0.8) + rng,
                    ),
                    (
                        f"top_k_top_p-rows-{suffix}",
                        "top_k_top_p_sampling",
                        (probs, n, None, k_arr, 0, p_arr, 0.0) + rng,
                    ),
                ]
        result += [
            (f"top_p_renorm-{tag}", "top_p_renorm", (probs, None, 0.9)),
            (f"top_p_renorm-rows-{tag}", "top_p_renorm", (probs, p_arr, 0.0)),
            (f"top_k_renorm-{tag}", "top_k_renorm", (probs, None, 50)),
            (f"top_k_renorm-rows-{tag}", "top_k_renorm", (probs, k_arr, 0)),
            (f"top_k_mask_logits-{tag}", "top_k_mask_logits", (logits, None, 50)),
        ]
    return result


def run_case(torch, module, op, args):
    src = args[0]
    if op.endswith(("_renorm", "_mask_logits")):
        out = torch.empty_like(src)
        getattr(module, op)(src, out, *args[1:])
    else:
        out = torch.empty(args[1], dtype=torch.int32, device="cuda")
        getattr(module, op)(src, out, *args[2:])
    torch.cuda.synchronize()
    return out.view(torch.int32).cpu()  # floats compared bit for bit


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patch", default="0005", help="number of the patch under test")
    parser.add_argument("--build-dir", type=Path, help="keep the builds here (reused if present)")
    parser.add_argument(
        "--build-only", action="store_true", help="compile both variants, run nothing"
    )
    args = parser.parse_args(argv)
    started = time.time()

    sm = load_setup_musa()
    sm._prepare_cuda_env()  # CUDA_HOME / TORCH_CUDA_ARCH_LIST before cpp_extension
    patches = sm._patches()
    without = [p for p in patches if not p.name.startswith(f"{args.patch}-")]
    if len(without) != len(patches) - 1:
        sys.exit(f"expected exactly one {args.patch}-*.patch in {sm.PATCH_DIR}")

    import torch
    from torch.utils.cpp_extension import load

    if not torch.cuda.is_available() and not args.build_only:
        sys.exit("check_patch_identity: needs a CUDA GPU (or --build-only)")

    with tempfile.TemporaryDirectory(prefix="patch-identity-") as tmp:
        work = args.build_dir or Path(tmp)
        specs = {
            "patched": build_spec(sm, work, "patched", patches),
            "unpatched": build_spec(sm, work, "unpatched", without),
        }
        build_both(specs)
        built = time.time()
        if args.build_only:
            print(f"built both variants in {built - started:.0f} s")
            return 0
        modules = {variant: load(verbose=False, **spec) for variant, spec in specs.items()}
        assert {v: m.variant() for v, m in modules.items()} == {v: f"identity_{v}" for v in modules}
        patched_text = (work / "patched/flashinfer/include/flashinfer/sampling.cuh").read_text()
        unpatched_text = (work / "unpatched/flashinfer/include/flashinfer/sampling.cuh").read_text()
        assert patched_text != unpatched_text, f"patch {args.patch} changed no header text"

        mismatches, unstable = [], []
        all_cases = cases(torch)
        for name, op, case_args in all_cases:
            outputs = {
                v: [run_case(torch, m, op, case_args) for _ in range(2)] for v, m in modules.items()
            }
            if any(not torch.equal(runs[0], runs[1]) for runs in outputs.values()):
                unstable.append(name)
                print(f"UNSTABLE {name} (a variant differs from itself)")
            elif not torch.equal(outputs["patched"][0], outputs["unpatched"][0]):
                diff = (outputs["patched"][0] != outputs["unpatched"][0]).sum().item()
                mismatches.append(name)
                print(f"MISMATCH {name}: {diff} element(s) differ")
            else:
                print(f"same     {name}")

    elapsed = time.time() - started
    print(
        f"\n{len(all_cases)} cases, {len(mismatches)} mismatch(es), {len(unstable)} unstable; "
        f"builds {built - started:.0f} s, total {elapsed:.0f} s"
    )
    if mismatches or unstable:
        print(
            f"FAIL: patch {args.patch} changes results"
            if mismatches
            else "FAIL: results not reproducible"
        )
        return 1
    print(
        "PASS: samples and renormalised outputs are bit-identical with and without "
        f"patch {args.patch}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
