"""The MUSA porting lint: it ports like the build, passes on this tree, finds the
unpatched FlashInfer scan, and catches each construct that breaks MUSA."""

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest
from torchada_porter import torchada_port_in_place

KERNEL_DIR = Path(__file__).resolve().parents[1]
TOOLS = KERNEL_DIR / "tools"
spec = importlib.util.spec_from_file_location("musa_port_lint", TOOLS / "musa_port_lint.py")
lint = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = lint  # dataclasses look their module up
spec.loader.exec_module(lint)
port = lint.musa_port

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torchada") is None,
    reason="torchada (PyPI) is needed for its porting rules",
)


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    return lint.stage(tmp_path_factory.mktemp("lint") / "stage")


@pytest.fixture(scope="module")
def rules():
    return lint.port_rules()


def test_the_tree_passes(tmp_path):
    assert lint.run(tmp_path / "stage") == []


def test_the_unpatched_flashinfer_scan_is_found(tmp_path):
    """Without patch 0005 the lint reports every shuffle of DeterministicInclusiveSum and
    the `threadIdx.x | 0xffffffff` broadcast, and nothing else."""
    findings = lint.run(tmp_path / "stage", exclude_patch="0005-")
    text = (tmp_path / "stage/flashinfer_include/flashinfer/sampling.cuh").read_text()
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines, 1) if "void DeterministicInclusiveSum(" in line)
    last = next(i for i, line in enumerate(lines, 1) if i > first and line.startswith("}"))
    assert sorted(f.rule for f in findings) == ["lane-mask"] + ["shfl-width"] * 5
    assert {f.path for f in findings} == {"flashinfer_include/flashinfer/sampling.cuh"}
    assert all(first < f.line < last for f in findings)
    broadcast = [f for f in findings if f.rule == "lane-mask"][0]
    assert "threadIdx.x | 0xffffffff" in lines[broadcast.line - 1]


def test_main_exit_status(tmp_path, capsys):
    assert lint.main(["--keep", str(tmp_path / "kept")]) == 0
    assert "0 finding(s)" in capsys.readouterr().out
    assert lint.main(["--keep", str(tmp_path / "old"), "--exclude-patch", "0005-"]) == 1
    assert "6 finding(s)" in capsys.readouterr().out


def test_torchada_is_not_imported():
    lint.port_rules()
    assert "torchada" not in sys.modules  # importing it would patch torch on this host


# ----------------------------------------------------------------------------- the port


@pytest.mark.parametrize(
    "line, ported",
    [
        ("#include <curand_philox4x32_x.h>", "#include <murand_philox4x32_10.h>"),
        (
            "#include <ATen/cuda/CUDAGeneratorImpl.h>",
            '#include "torch_musa/csrc/aten/musa/MUSAGeneratorImpl.h"',
        ),
        (
            "at::get_generator_or_default<at::CUDAGeneratorImpl>(",
            "at::get_generator_or_default<at::MUSAGeneratorImpl>(",
        ),
        (
            "at::cuda::detail::getDefaultCUDAGenerator(0)",
            "at::musa::detail::getDefaultMUSAGenerator(0)",
        ),
        ("#ifdef CUDART_VERSION", "#if 0"),
        ("PhiloxCudaState s;", "PhiloxMusaState s;"),
        ('m.impl("op", torch::kCUDA, &f);', 'm.impl("op", torch::kPrivateUse1, &f);'),
        ("auto s = impl->philox_cuda_state(4);", "auto s = impl->philox_musa_state(4);"),
        (
            "return cudaLaunchKernel(k, g, b, a, 0, s);",
            "return musaLaunchKernel(k, g, b, a, 0, s);",
        ),
        ('#include "cuda.h"', '#include "musa.h"'),
        ('#include "foo_cuda.h"', '#include "foo_cuda.h"'),
        ("#include <cub/cub.cuh> // cudaStream_t", "#include <cub/cub.cuh> // cudaStream_t"),
        ("// cudaStream_t in a comment", "// cudaStream_t in a comment"),
    ],
    ids=[
        "philox-header-torch_musa-table",
        "generator-header-two-rules",
        "generator-class",
        "default-generator",
        "cudart-branch",
        "philox-state-type",
        "dispatch-key",
        "philox-member-arrow",
        "extra-port-rule",
        "cuda.h-narrowed",
        "project-header-kept",
        "cub-line-skipped",
        "comment-line-skipped",
    ],
)
def test_the_port_applies_torchada_ours_and_torch_musas_rules(rules, line, ported):
    assert port.port_text(line, rules) == ported


def test_torch_musa_tables_win_over_torchada_on_equal_keys():
    rules = port.port_rules(
        {"CUDAStream": "TorchadaStream", "x": "y"}, [{"CUDAStream": "MUSAStream"}]
    )
    assert dict(rules)["CUDAStream"] == "MUSAStream" and dict(rules)["x"] == "y"


def test_the_lint_ports_exactly_like_torchadas_own_code(staged, rules, tmp_path):
    """torchada 0.1.103's real in-place porter (run in a subprocess: importing torchada
    patches torch) turns the staged tree into byte-for-byte what the lint analyses."""
    tree = tmp_path / "tree"
    shutil.copytree(staged, tree)
    torchada_port_in_place(tree, lint.load_setup_musa().EXTRA_PORT_RULES)
    expected = port.port_tree(staged, rules)
    for path, text in expected.items():
        assert (tree / path.relative_to(staged)).read_text() == text, path
    changed = [p for p in expected if expected[p] != p.read_text()]
    assert len(changed) >= 5  # every compiled file has CUDA spellings to port


# ----------------------------------------------------------------------------- planted code

PLANTED = {
    "shfl-default-width": ("float v = __shfl_down_sync(0xffffffff, x, 1);", ["shfl-width"]),
    "shfl-width-64": ("float v = __shfl_xor_sync(0xffffffff, x, 1, 64);", ["shfl-width"]),
    "shfl-width-warpSize": (
        "float v = __shfl_sync(0xffffffff, x,\n      0, warpSize);",
        ["shfl-width", "warp-size"],
    ),
    "shfl-legacy": ("float v = __shfl(x, 0, 32);", ["shfl-width"]),
    "lane-or-all-ones": ("int src = threadIdx.x | 0xffffffff;", ["lane-mask"]),
    "lane-and-127": ("int lane = threadIdx.x & 127;", ["lane-mask"]),
    "lane-alias-mod-64": ("const int tx = threadIdx.x;\n  int lane = tx % 64;", ["lane-mask"]),
    "warp-size": ("int warp = threadIdx.x / warpSize;", ["warp-size"]),
    "warp-vote": ("unsigned b = __ballot_sync(0xffffffff, x > 0);", ["warp-vote"]),
    "cuda-driver-call": ("cuLaunchKernel(f);", ["cuda-left"]),
    "cuda-runtime-type": ("cudaPointerAttributes attributes;", ["cuda-left"]),
    "cuda-fp4-type": ("__nv_fp4_e2m1 v;", ["cuda-left"]),
    "cuda-header": ("#include <cuda_fp4.h>", ["cuda-header"]),
    "cuda-namespace": ("using Op = cuda::maximum<>;", ["cuda-namespace"]),
    "plain-asm": ('asm("mov.u32 %0, %%laneid;" : "=r"(lane));', ["plain-asm"]),
    "dispatch-key": ("TORCH_LIBRARY_IMPL(sgl_kernel, CUDA, m) {}", ["dispatch-key"]),
    "philox-member": ("auto s = gen.philox_cuda_state(4);", ["philox-member"]),
    "dead-ptx": ('asm volatile("rcp.approx.f32 %0, %1;" : "=f"(y) : "f"(x));', ["dead-ptx"]),
    # lane arithmetic in other forms (issue 17, point 6)
    "lane-parenthesised": ("int lane = (threadIdx.x) & 127;", ["lane-mask"]),
    "lane-mask-first": ("int lane = 0x7f & threadIdx.x;", ["lane-mask"]),
    "lane-named-constant": (
        "constexpr int kWarp = 128;\n  int lane = threadIdx.x % kWarp;",
        ["lane-mask"],
    ),
    "lane-macro-of-constant": (
        "#define LANE_MASK (kWarpLanes - 1)\n  constexpr unsigned kWarpLanes{128};\n"
        "  int lane = threadIdx.x & LANE_MASK;",
        ["lane-mask"],
    ),
    "lane-enum-constant": (
        "enum { kLanes = 64 };\n  int lane = threadIdx.x % kLanes;",
        ["lane-mask"],
    ),
    "lane-brace-alias-auto": ("auto t{threadIdx.x};\n  int lane = t & 127;", ["lane-mask"]),
    "lane-brace-alias-unsigned": (
        "unsigned tid{threadIdx.x};\n  int lane = tid % 64;",
        ["lane-mask"],
    ),
    "lane-compound-index": (
        "int lane = (threadIdx.x + blockDim.x * threadIdx.y) % 64;",
        ["lane-mask"],
    ),
    "lane-compound-alias": (
        "const int t = threadIdx.x + blockDim.x * threadIdx.y;\n  int lane = t & 63;",
        ["lane-mask"],
    ),
    "lane-modulo-written-out": (
        "int lane = threadIdx.x - (threadIdx.x / 128) * 128;",
        ["lane-mask"],
    ),
    "lane-modulo-written-out-alias": (
        "const unsigned t = threadIdx.x;\n  int lane = t - t / 64 * 64;",
        ["lane-mask"],
    ),
    "lane-compound-assignment": ("unsigned t = threadIdx.x;\n  t %= 64;", ["lane-mask"]),
    # cooperative groups sized to, or voting across, the hardware warp
    "coop-coalesced-threads": (
        "auto g = cooperative_groups::coalesced_threads();",
        ["coop-groups"],
    ),
    "coop-tiled-partition-128": (
        "auto tile = cooperative_groups::tiled_partition(block, 128);",
        ["coop-groups"],
    ),
    "coop-tiled-partition-32": (
        "auto tile = cooperative_groups::tiled_partition<32>(block);",
        ["coop-groups"],
    ),
    "coop-tile-ballot": ("unsigned b = tile.ballot(x > 0);", ["coop-groups"]),
    "coop-tile-any": (
        "auto tile = cooperative_groups::tiled_partition<32>(block);\n  bool a = tile.any(x > 0);",
        ["coop-groups", "coop-groups"],
    ),
    # 64-bit and double atomicAdd
    "atomic-u64-cast": (
        "atomicAdd(reinterpret_cast<unsigned long long*>(p), 1ull);",
        ["atomic-64"],
    ),
    "atomic-double-shared": ("__shared__ double total;\n  atomicAdd(&total, 1.0);", ["atomic-64"]),
    "atomic-double-value": ("atomicAdd(q, static_cast<double>(x));", ["atomic-64"]),
    "atomic-int64-member": (
        "struct W { uint64_t hits[4]; } w;\n  atomicAdd(&w.hits[1], 1);",
        ["atomic-64"],
    ),
}

ALLOWED = {
    "lane-mod-32": "int lane = threadIdx.x % 32;",
    "lane-and-31": "int lane = threadIdx.x & 31;",
    "group-div-32": "int group = threadIdx.x / 32;",
    "shfl-width-32": "float v = __shfl_xor_sync(0xffffffff, x, 1, 32);",
    "shfl-width-16": "float v = __shfl_sync(0xffffffff, x, 15, 16);",
    "comment": "// __shfl_sync(0xffffffff, x, 0) and cudaLaunchKernel, in a comment",
    "block-comment": "/* warpSize\n     __ballot_sync(0xffffffff, 1) */",
    "string": 'const char* s = "cuLaunchKernel __shfl_sync(m, x, 0) warpSize";',
    "cuda-version-branch": "#if CUDA_VERSION >= 12090\n  using Op = cuda::maximum<>;\n#endif",
    "dead-branch": "#if 0\n  int w = warpSize;\n#endif",
    "undefined-macro": "#ifdef FLASHINFER_PLANTED_NOT_DEFINED\n  cuLaunchKernel(f);\n#endif",
    "ptx-without-output": 'asm volatile("membar.gl;");',
    "ported-runtime-call": "cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, 0);",
    "brace-alias-mod-32": "unsigned lane{threadIdx.x % 32};",
    "brace-alias-and-31": "auto t{threadIdx.x};\n  int lane = t & 31;",
    "named-constant-32": "constexpr int kGroup = 32;\n  int lane = threadIdx.x % kGroup;",
    "compound-index-mod-32": "int lane = (threadIdx.x + blockDim.x * threadIdx.y) % 32;",
    "group-number-masked": "int g = (threadIdx.x / 32) & 127;",
    "group-number-shifted": "int g = threadIdx.x >> 5 & 127;",
    "modulo-written-out-32": "int lane = threadIdx.x - (threadIdx.x / 32) * 32;",
    "unknown-modulus": "int r = (threadIdx.x + 1) % (offset * 2);",
    "address-of-index": "unsigned* q = &s[threadIdx.x & 31];",
    "logical-and": "bool b = threadIdx.x > 0 && (flags & 0x100);",
    "atomic-32-shared": "__shared__ unsigned counts[64];\n  atomicAdd(&counts[threadIdx.x & 31], 1u);",
    "atomic-float": "atomicAdd(out, x * 2.f);",
}


def plant(staged, tmp_path, body: str) -> Path:
    """A header with `body` inside a device function, included from sampling.cu."""
    tree = tmp_path / "stage"
    shutil.copytree(staged, tree)
    (tree / "include" / "planted.cuh").write_text(
        f"#pragma once\n// planted for the test\n__device__ void planted(float x) {{\n  {body}\n}}\n"
    )
    source = tree / "csrc" / "sampling" / "sampling.cu"
    source.write_text(source.read_text() + '\n#include "planted.cuh"\n')
    return tree


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_a_planted_construct_is_found(staged, tmp_path, case):
    body, expected = PLANTED[case]
    findings = lint.lint_sources(plant(staged, tmp_path, body))
    assert sorted(f.rule for f in findings) == sorted(expected)
    assert {f.path for f in findings} == {"include/planted.cuh"}
    assert all(4 <= f.line <= 3 + body.count("\n") + 1 for f in findings)


@pytest.mark.parametrize("case", sorted(ALLOWED))
def test_allowed_code_is_not_reported(staged, tmp_path, case):
    assert lint.lint_sources(plant(staged, tmp_path, ALLOWED[case])) == []


def test_a_branch_mcc_may_compile_is_checked_on_both_sides(staged, tmp_path):
    body = "#if defined(__MUSA_ARCH__)\n  int a = warpSize;\n#else\n  int b = warpSize;\n#endif"
    findings = lint.lint_sources(plant(staged, tmp_path, body))
    assert [(f.line, f.rule) for f in findings] == [(5, "warp-size"), (7, "warp-size")]


def test_a_file_that_is_not_compiled_is_not_checked(staged, tmp_path):
    tree = tmp_path / "stage"
    shutil.copytree(staged, tree)
    (tree / "csrc" / "unused.cu").write_text("__device__ int f() { return warpSize; }\n")
    assert lint.lint_sources(tree) == []


def test_reviewed_ptx_entries_are_real_and_unused_by_sampling(staged, monkeypatch):
    reviewed = set(lint.REVIEWED_PTX)
    monkeypatch.setattr(lint, "REVIEWED_PTX", {})
    findings = [f for f in lint.lint_sources(staged) if f.rule == "dead-ptx"]
    assert {opcode for opcode in reviewed for f in findings if opcode in f.text} == reviewed
    assert len(findings) == len(reviewed)
    assert {f.path for f in findings} == {"flashinfer_include/flashinfer/vec_dtypes.cuh"}
    sampling = (staged / "flashinfer_include/flashinfer/sampling.cuh").read_text()
    ours = (staged / "csrc/sampling/sampling.cu").read_text()
    for text in (sampling, ours):
        assert not re.search(r"\bld_global_(acquire|volatile)\s*\(|fp8|e4m3|e5m2", text)


def test_an_nvcc_only_flag_in_the_musa_flags_is_found(monkeypatch):
    setup_musa = lint.load_setup_musa()
    assert lint.lint_flags(setup_musa) == []
    monkeypatch.setattr(
        setup_musa, "MCC_FLAGS", setup_musa.MCC_FLAGS + ["--expt-relaxed-constexpr"]
    )
    assert [f.rule for f in lint.lint_flags(setup_musa)] == ["nvcc-flag"]
