"""Porting lint: what would break when the MUSA build compiles this tree.

    python sgl-kernel/tools/musa_port_lint.py [--keep DIR]

Runs without MUSA hardware. It stages exactly what setup_musa.py compiles for MUSA
(our csrc/ and include/ plus the patched FlashInfer headers), applies torchada's
CUDA->MUSA porting rules the way its in-place porter does (per line, longest rule
first; rules read from the installed torchada without importing torchada itself,
whose import patches torch), and reports constructs that fail or silently misbehave
on MUSA:

  plain-asm        asm(...) without volatile: inline PTX, no MUSA equivalent
  cuda-namespace   cuda:: left after porting (libcu++ functors), unless inside an
                   #if CUDA_VERSION branch, which mcc does not compile
  dispatch-key     TORCH_LIBRARY_IMPL(ns, CUDA, m) or DispatchKey::CUDA: not ported,
                   the op would never be registered for MUSA tensors
  philox-member    .philox_cuda_state (only ->philox_cuda_state is ported)
  dead-ptx         inline PTX with outputs that porting turns into `if(0) asm volatile`,
                   in our sources (outputs would be uninitialised)
  warp-32          a hard-coded 32-lane warp in our sources (MTT S4000 warps have 128)
  nvcc-flag        an nvcc-only flag in the MUSA flag lists of setup_musa.py

Exit status 1 when anything is found; each finding names file, line and rule.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parents[1]
OUR_DIRS = ("csrc", "include")  # staged names of our own sources
SOURCE_SUFFIXES = {".cu", ".cuh", ".cc", ".cpp", ".h", ".hpp"}

NVCC_ONLY_FLAG_PREFIXES = (
    "--expt-",
    "-gencode",
    "--generate-code",
    "-arch=sm_",
    "--gpu-architecture",
    "--use_fast_math",
    "-Xcompiler",
    "--compiler-options",
    "-Xptxas",
    "--ptxas-options",
    "-U__CUDA_NO_",
    "-lineinfo",
    "-rdc",
    "--threads",
)

LINE_RULES = {
    # name: (regex on a ported line, applies to our sources only?)
    "plain-asm": (re.compile(r"\b(asm|__asm__)\s*\((?!\s*\))"), False),
    "dispatch-key": (
        re.compile(r"TORCH_LIBRARY_IMPL\s*\(\s*\w+\s*,\s*CUDA\s*,|DispatchKey::CUDA\b"),
        False,
    ),
    "philox-member": (re.compile(r"\.philox_cuda_state\b"), False),
    "dead-ptx": (re.compile(r"if\(0\)\s*asm\s+volatile\s*\(.*\"=[a-z]"), True),
    "warp-32": (
        re.compile(
            r"\b(WARP_SIZE|kWarpSize|warp_size)\s*=\s*32\b|[/%]\s*32\b|\b0xffffffff\b|__shfl\w*_sync"
        ),
        True,
    ),
}
CUDA_NAMESPACE = re.compile(r"(?<![\w:])cuda::")
CUDA_VERSION_IF = re.compile(r"^\s*#\s*if\b.*\bCUDA_VERSION\b")


@dataclass
class Finding:
    path: str
    line: int
    rule: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.rule}] {self.text.strip()}"


def load_setup_musa():
    spec = importlib.util.spec_from_file_location("setup_musa", KERNEL_DIR / "setup_musa.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_torchada_rules() -> list[tuple[str, str]]:
    """torchada's mapping rules, longest key first, as its porter applies them."""
    spec = importlib.util.find_spec("torchada")  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "musa_port_lint: torchada is not installed (pip install 'torchada>=0.1.56')"
        )
    mappings = Path(list(spec.submodule_search_locations)[0]) / "_mappings"
    pkg = importlib.util.spec_from_file_location(
        "_torchada_mappings", mappings / "__init__.py", submodule_search_locations=[str(mappings)]
    )
    module = importlib.util.module_from_spec(pkg)
    sys.modules[pkg.name] = module
    pkg.loader.exec_module(module)
    rules = [(k, v) for k, v in module.MAPPING_RULE.items() if k != v and k != "cuda.h"]
    rules.append(("#include <cuda.h>", "#include <musa.h>"))  # torchada narrows cuda.h so
    return sorted(rules, key=lambda kv: len(kv[0]), reverse=True)


def port_line(line: str, rules) -> str:
    for key, value in rules:
        if key in line:
            line = line.replace(key, value)
    return line


def stage(dest: Path) -> Path:
    setup_musa = load_setup_musa()
    include = setup_musa.stage_flashinfer()
    return setup_musa.stage_musa_sources(include, dest)


def lint_sources(stage_dir: Path, rules) -> list[Finding]:
    findings = []
    for path in sorted(p for p in stage_dir.rglob("*") if p.suffix in SOURCE_SUFFIXES):
        rel = path.relative_to(stage_dir)
        ours = rel.parts[0] in OUR_DIRS
        depth_in_cuda_version_if = 0  # lines here are compiled only by nvcc
        depth = 0
        for number, raw in enumerate(path.read_text(errors="surrogateescape").splitlines(), 1):
            line = port_line(raw, rules)
            stripped = line.strip()
            if stripped.startswith("#if"):
                depth += 1
                if CUDA_VERSION_IF.match(line) and not depth_in_cuda_version_if:
                    depth_in_cuda_version_if = depth
            elif stripped.startswith(("#else", "#elif")) and depth == depth_in_cuda_version_if:
                depth_in_cuda_version_if = 0  # the #else branch is what mcc compiles
            elif stripped.startswith("#endif"):
                if depth == depth_in_cuda_version_if:
                    depth_in_cuda_version_if = 0
                depth -= 1
            code = line.split("//", 1)[0]
            if not code.strip():
                continue
            if CUDA_NAMESPACE.search(code) and not depth_in_cuda_version_if:
                findings.append(Finding(str(rel), number, "cuda-namespace", line))
            for rule, (pattern, ours_only) in LINE_RULES.items():
                if (ours or not ours_only) and pattern.search(code):
                    findings.append(Finding(str(rel), number, rule, line))
    return findings


def lint_flags(setup_musa) -> list[Finding]:
    findings = []
    for list_name in ("MCC_FLAGS", "MUSA_CXX_FLAGS"):
        for flag in getattr(setup_musa, list_name):
            if flag.startswith(NVCC_ONLY_FLAG_PREFIXES):
                findings.append(Finding("setup_musa.py", 0, "nvcc-flag", f"{list_name}: {flag}"))
    return findings


def run(stage_dir: Path) -> list[Finding]:
    rules = load_torchada_rules()
    stage(stage_dir)
    return lint_sources(stage_dir, rules) + lint_flags(load_setup_musa())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", type=Path, help="stage into this directory and keep it")
    args = parser.parse_args(argv)
    if args.keep:
        findings = run(args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="musa-port-lint-") as tmp:
            findings = run(Path(tmp) / "stage")
    for finding in findings:
        print(finding)
    print(f"musa_port_lint: {len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
