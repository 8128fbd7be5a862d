"""Porting lint: what would break when the MUSA build compiles this tree.

    python sgl-kernel/tools/musa_port_lint.py [--keep DIR] [--exclude-patch PREFIX]

Runs without MUSA hardware or toolkit. It stages exactly what setup_musa.py compiles
for MUSA (our csrc/ and include/ plus the patched FlashInfer headers), ports it the way
the build does (torchada 0.1.103's rules plus setup_musa.EXTRA_PORT_RULES, with
torch_musa's own tables merged over them; see musa_port.py), follows the #include graph
from the sources through the #if branches mcc compiles, and reports, on those lines
only (comments and string literals ignored; line numbers are the checkout's, the text
shown is the ported one):

  shfl-width      a warp shuffle without an explicit literal width <= 32 (the default
                  width is warpSize: 128 on MTT S4000), or a pre-_sync __shfl*
  lane-mask       a thread index masked or reduced past one 32-lane group:
                  `threadIdx.x | 0xffffffff`, `& 127`, `% 64` (the rule: with every
                  shuffle at width <= 32, lanes are numbered inside 32-lane groups, so a
                  thread index may only be combined with `&`/`|` by a value <= 31 and
                  `%` by a value <= 32; `/` and `>>` give group numbers and are fine).
                  The thread index may be parenthesised, part of a compound index
                  (`(threadIdx.x + blockDim.x * threadIdx.y) % 64`) or an alias made with
                  `=` or braces (`auto t{threadIdx.x}`); the value a literal, a named
                  constant (constexpr / const / #define / enum, arithmetic resolved) or
                  an expression of those; modulo written out (`t - (t / 64) * 64`) too.
                  A value that cannot be resolved (a loop variable) is not reported
  coop-groups     cooperative groups that span the hardware warp or take its mask:
                  coalesced_threads(), tiled_partition(...) / tiled_partition<N>,
                  thread_block_tile, coalesced_group, and .ballot / .match_any /
                  .match_all (and .any / .all on a tile): their semantics on 128-lane
                  warps are unverified and their masks are 32-bit
  atomic-64       atomicAdd on a 64-bit integer or a double (a pointer cast to, or a
                  name declared as, double / long long / int64_t / uint64_t / size_t,
                  or a double or 64-bit literal / cast as the value): whether MUSA has
                  them natively is unverified (on sm_90 a 64-bit shared add is a CAS loop)
  warp-size       `warpSize` (32 on CUDA, 128 on mp_21/mp_22: code using it changes
                  meaning between the two)
  warp-vote       whole-warp primitives (__ballot_sync, __any_sync, __all_sync,
                  __activemask, __syncwarp, __match_*_sync, __reduce_*_sync): they span
                  the hardware warp and their 32-bit masks cannot name 128 lanes
  cuda-left       a CUDA-only identifier (cudaX, cuX, curandX, __nv_X, at::cuda, kCUDA,
                  CUDAGeneratorImpl, ...) left after porting
  cuda-header     an #include of a CUDA-only header left after porting
  cuda-namespace  cuda:: left after porting (libcu++ functors)
  plain-asm       asm(...) without volatile: inline PTX, which MUSA cannot assemble
  dead-ptx        inline PTX with outputs, which porting turns into `if(0) asm volatile`
                  (outputs uninitialised), unless listed in REVIEWED_PTX with the reason
                  the sampling kernels never run it
  dispatch-key    TORCH_LIBRARY_IMPL(ns, CUDA, m) or DispatchKey::CUDA: not ported
  philox-member   .philox_cuda_state (only ->philox_cuda_state is ported)
  nvcc-flag       an nvcc-only flag in the MUSA flag lists of setup_musa.py

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

TOOLS_DIR = Path(__file__).resolve().parent
KERNEL_DIR = TOOLS_DIR.parent
INCLUDE_DIRS = ("include", "flashinfer_include")  # staged names (setup_musa.stage_musa_sources)


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


musa_port = _load("musa_port", TOOLS_DIR / "musa_port.py")

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

# Inline PTX with outputs that the sampling kernels never execute, with the reason.
# Each entry must still match something (a test checks), so a stale one is noticed.
REVIEWED_PTX = {
    "ld.acquire.global.sys.v4.b32": "vec_dtypes.cuh ld_global_acquire: not called by sampling",
    "ld.volatile.global.v4.b32": "vec_dtypes.cuh ld_global_volatile: not called by sampling",
    "cvt.rn.satfinite.e4m3x2.f16x2": "fp8 vec_cast: the sampling ops instantiate float only",
    "cvt.rn.satfinite.e5m2x2.f16x2": "fp8 vec_cast: the sampling ops instantiate float only",
    "cvt.rn.f16x2.e4m3x2": "fp8 vec_cast: the sampling ops instantiate float only",
    "cvt.rn.f16x2.e5m2x2": "fp8 vec_cast: the sampling ops instantiate float only",
}

SHUFFLE_CALL = re.compile(r"\b__shfl(_up|_down|_xor)?(_sync)?\s*\(")
THREAD_INDEX = r"threadIdx\.[xyz]"
INT_LITERAL = re.compile(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\b")
COOP_GROUPS = re.compile(
    r"\b(coalesced_threads|tiled_partition|thread_block_tile|coalesced_group)\b"
    r"|\.\s*(ballot|match_any|match_all)\s*\("
)
TILE_BINDING = re.compile(r"\b(\w+)\s*(?:=|\{)\s*(?:\w+::)*(?:tiled_partition|coalesced_threads)\b")
WIDE_TYPE = r"(?:double|(?:unsigned\s+)?long\s+long(?:\s+int)?|u?int64_t|size_t|uint64|int64)"
WIDE_DECLARATION = re.compile(rf"\b{WIDE_TYPE}\b[\s*&]*(?:__restrict__\s+)?(\w+)")
WIDE_POINTER_CAST = re.compile(rf"\b{WIDE_TYPE}\s*\*")
WIDE_VALUE = re.compile(
    rf"^\s*(?:\d+\.\d*|\.\d+|\d+[eE][-+]?\d+|\d+(?:[uU]?[lL]{{2}}|[lL]{{2}}[uU]?))"
    rf"|\b(?:static_cast\s*<\s*{WIDE_TYPE}\s*>|\(\s*{WIDE_TYPE}\s*\))"
)
NOT_A_NAME = frozenset(
    {
        "if",
        "else",
        "for",
        "while",
        "do",
        "switch",
        "return",
        "struct",
        "class",
        "union",
        "namespace",
        "enum",
        "operator",
        "case",
        "default",
        "try",
        "catch",
    }
)
ATOMIC_ADD = re.compile(r"\batomicAdd\s*\(")
CONSTANT_DEFINITION = re.compile(
    r"^\s*#\s*define\s+(\w+)\s+(.+?)\s*$"
    r"|\b(?:constexpr|const)\b[\w\s:<>]*?\b(\w+)\s*(?:=\s*([^;{},]+)|\{([^{}]+)\})\s*[;,)]"
    r"|(?:\benum\b[^{]*\{|,)\s*(\w+)\s*=\s*([^,}]+)"
)
WARP_VOTE = re.compile(
    r"\b(__ballot(?:_sync)?|__any(?:_sync)?|__all(?:_sync)?|__activemask|__syncwarp"
    r"|__match_(?:any|all)_sync|__reduce_\w+_sync)\s*\("
)
CUDA_LEFT = re.compile(
    r"\b(cuda[A-Z_]\w*|CUDA_[A-Z]\w*|cu[A-Z][a-z]\w*|curand\w*|CURAND_\w+|__nv_\w+"
    r"|nv_bfloat16\w*|nv_half\w*|__NV_\w+|PhiloxCudaState|getDefaultCUDAGenerator"
    r"|CUDAGeneratorImpl|CUDAStream|CUDAGuard|CUDACachingAllocator|kCUDA)\b"
    r"|\b(?:at|c10|torch)::cuda\b"
)
CUDA_HEADER = re.compile(
    r"^(cuda|cu[A-Z]|curand|cublas|cufft|cusparse|cusolver|cudnn|nvfunctional|crt/nv"
    r"|ATen/cuda/|c10/cuda/|torch/csrc/cuda/|thrust/system/cuda)"
)
LINE_RULES = {
    "plain-asm": re.compile(r"\b(asm|__asm__)\s*\((?!\s*\))"),
    "dispatch-key": re.compile(r"TORCH_LIBRARY_IMPL\s*\(\s*\w+\s*,\s*CUDA\s*,|DispatchKey::CUDA\b"),
    "philox-member": re.compile(r"\.philox_cuda_state\b"),
    "cuda-namespace": re.compile(r"(?<![\w:])cuda::"),
    "warp-size": re.compile(r"\bwarpSize\b"),
}
DEAD_PTX = re.compile(r"if\(0\)\s*asm\s+volatile\s*\(")


@dataclass
class Finding:
    path: str
    line: int
    rule: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.rule}] {self.text.strip()}"


def load_setup_musa():
    return _load("setup_musa_for_lint", KERNEL_DIR / "setup_musa.py")


def port_rules(setup_musa=None):
    """The rules the MUSA build applies: torchada's and ours, then torch_musa's tables."""
    setup_musa = setup_musa or load_setup_musa()
    return musa_port.port_rules({**musa_port.torchada_mapping(), **setup_musa.EXTRA_PORT_RULES})


def stage(dest: Path, exclude_patch: str | None = None) -> Path:
    """Stage what setup_musa.py compiles for MUSA into dest (all patches, or all but the
    ones whose name starts with exclude_patch)."""
    setup_musa = load_setup_musa()
    if exclude_patch is None:
        return setup_musa.stage_musa_sources(setup_musa.stage_flashinfer(), Path(dest))
    chosen = [p for p in setup_musa._patches() if not p.name.startswith(exclude_patch)]
    with tempfile.TemporaryDirectory(prefix="musa-port-lint-flashinfer-") as tmp:
        include = setup_musa.stage_flashinfer_into(Path(tmp), chosen)
        return setup_musa.stage_musa_sources(include, Path(dest))


# ----------------------------------------------------------------------------- checks


def split_args(text: str) -> list[str]:
    """The top-level comma-separated arguments of a call's argument text."""
    args, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            args.append(current.strip())
            current = ""
            continue
        depth += char in "([{"
        depth -= char in ")]}"
        current += char
    return args + [current.strip()]


def _shuffle_findings(rel: str, code: str, starts: list[int]) -> list[Finding]:
    findings = []
    for match in SHUFFLE_CALL.finditer(code):
        depth, index = 1, match.end()
        while depth and index < len(code):
            depth += {"(": 1, ")": -1}.get(code[index], 0)
            index += 1
        call = code[match.start() : index]
        args = split_args(code[match.end() : index - 1])
        width = args[3] if match.group(2) and len(args) == 4 else None
        literal = re.fullmatch(r"(\d+)[uU]?", width or "")
        if literal is None or not 1 <= int(literal.group(1)) <= 32:
            line = next(i for i, start in enumerate(starts, 1) if start > match.start()) - 1
            findings.append(Finding(rel, line, "shfl-width", " ".join(call.split())))
    return findings


def _value(text: str, constants: dict, depth: int = 0):
    """The integer value of a constant expression (literals, named constants, + - * / %
    << >> & | ^ ~ and parentheses), or None when anything in it is unknown."""
    if depth > 8:
        return None
    text = text.strip()

    def name(match):
        word = match.group(0)
        if re.fullmatch(r"\d\w*|0[xX]\w+", word):
            return word
        if word in constants:
            value = _value(constants[word], constants, depth + 1)
            if value is not None:
                return str(value)
        raise KeyError(word)

    try:
        expr = re.sub(r"\b\w+\b", name, text)
    except KeyError:
        return None
    expr = INT_LITERAL.sub(lambda m: str(int(m.group(1), 0)), expr)
    expr = re.sub(r"\bstatic_cast\s*<[^>]*>|\(\s*(?:unsigned|int|uint32_t|int32_t)\s*\)", "", expr)
    if not re.fullmatch(r"[\d\s()+\-*/%<>&|^~]*", expr) or not re.search(r"\d", expr):
        return None
    try:
        value = eval(expr.replace("/", "//"), {"__builtins__": {}}, {})  # noqa: S307
    except Exception:
        return None
    return value if isinstance(value, int) else None


def _operand_before(code: str, end: int) -> str:
    """The operand that ends at code[:end] (an identifier chain, a call, an index or a
    parenthesised group), joined through higher-precedence + - * << (not / or >>: a
    quotient is a group number, not a lane)."""
    index = end
    parts_start = end
    while True:
        while index > 0 and code[index - 1].isspace():
            index -= 1
        start = index
        while start > 0 and code[start - 1] in ")]":
            depth, start = 0, start - 1
            while start >= 0:
                depth += {")": 1, "]": 1, "(": -1, "[": -1}.get(code[start], 0)
                if depth == 0:
                    break
                start -= 1
        while start > 0 and (code[start - 1].isalnum() or code[start - 1] in "_.:"):
            start -= 1
        if start > 1 and code[start - 2 : start] == "->":
            index = start - 2
            continue
        if start == index:
            return code[parts_start:end]
        parts_start = start
        before = start
        while before > 0 and code[before - 1].isspace():
            before -= 1
        op = code[before - 2 : before] if before >= 2 else ""
        if op == "<<" or (
            before > 0
            and code[before - 1] in "+-*"
            and (before < 2 or code[before - 2] not in "+-*/%&|^<>=!(,")
        ):
            index = before - (2 if op == "<<" else 1)
            continue
        return code[parts_start:end]


def _operand_after(code: str, start: int) -> str:
    index = start
    while index < len(code) and code[index].isspace():
        index += 1
    if index < len(code) and code[index] == "(":
        depth, end = 0, index
        while end < len(code):
            depth += {"(": 1, ")": -1}.get(code[end], 0)
            end += 1
            if depth == 0:
                break
        return code[index:end]
    match = re.match(r"~?\s*[\w.:]+", code[index:])
    return match.group(0) if match else ""


def _carries_lane(text: str, lanes: re.Pattern) -> bool:
    """Whether a thread index (or alias) in `text` is used as such, not divided or
    shifted down into a group number."""
    for match in lanes.finditer(text):
        rest = text[match.end() :].lstrip()
        if not (rest.startswith("/") or rest.startswith(">>")):
            return True
    return False


def _lane_findings(code: str, aliases, constants: dict | None = None) -> list[str]:
    constants = constants or {}
    names = [THREAD_INDEX] + [re.escape(a) for a in sorted(aliases)]
    lanes = re.compile(rf"(?<![\w.])(?:{'|'.join(names)})\b")
    if not lanes.search(code):
        return []
    hits = []
    for match in re.finditer(r"(?<![&|])([&|%])(?![&|])(=?)", code):
        op = match.group(1)
        left = _operand_before(code, match.start())
        right = _operand_after(code, match.end())
        if not left.strip() or not right.strip():
            continue  # unary & (address-of)
        pairs = [(left, right)] + ([(right, left)] if op in "&|" else [])
        for lane_side, value_side in pairs:
            if not _carries_lane(lane_side, lanes) or lanes.search(value_side):
                continue
            value = _value(value_side.lstrip("~").strip(), constants)
            if value is None:
                continue
            if value_side.lstrip().startswith("~"):
                value = ~value & 0xFFFFFFFF
            if (op in "&|" and value > 31) or (op == "%" and value > 32):
                hits.append(f"{lane_side.strip()} {op} {value_side.strip()}")
                break
    # modulo written out: t - (t / N) * N
    for match in re.finditer(
        rf"({lanes.pattern}|\(\s*{lanes.pattern}\s*\))\s*-\s*\(?\s*\(?\s*({lanes.pattern})"
        r"\s*\)?\s*/\s*(\w+)\s*\)?\s*\*\s*(\w+)",
        code,
    ):
        divisor, factor = _value(match.group(3), constants), _value(match.group(4), constants)
        if divisor is not None and divisor == factor and divisor > 32:
            hits.append(match.group(0))
    return hits


def _atomic64_findings(code: str, wide_names: set) -> list[str]:
    hits = []
    for match in ATOMIC_ADD.finditer(code):
        depth, index = 1, match.end()
        while depth and index < len(code):
            depth += {"(": 1, ")": -1}.get(code[index], 0)
            index += 1
        args = split_args(code[match.end() : index - 1])
        target = args[0] if args else ""
        value = args[1] if len(args) > 1 else ""
        stripped = re.sub(r"\[[^\]]*\]", "", target)
        last = re.findall(r"\w+", stripped)
        if (
            WIDE_POINTER_CAST.search(target)
            or (last and last[-1] in wide_names)
            or WIDE_VALUE.search(value)
        ):
            hits.append(code[match.start() : index])
    return hits


def _constants(code: str, constants: dict) -> None:
    for match in CONSTANT_DEFINITION.finditer(code):
        if match.group(1):
            if not re.match(r"\w+\(", code.split("define", 1)[1].strip()):  # not a macro fn
                constants.setdefault(match.group(1), match.group(2))
        elif match.group(3):
            constants.setdefault(match.group(3), match.group(4) or match.group(5))
        elif match.group(6):
            constants.setdefault(match.group(6), match.group(7))


def _aliases(code: str) -> set:
    found = set()
    for match in re.finditer(r"\b(\w+)\s*(?:=\s*([^;,]*)|\{([^{}]*)\})", code):
        if match.group(1) in NOT_A_NAME:
            continue
        init = match.group(2) if match.group(2) is not None else match.group(3)
        if init is None or match.group(2) is not None and code[match.end(1) :].lstrip()[:2] == "==":
            continue
        if re.search(THREAD_INDEX, init) and not re.search(r"[%&|/]|>>", init):
            found.add(match.group(1))
    return found


def lint_sources(stage_dir: Path, rules=None, flags=None) -> list[Finding]:
    setup_musa = load_setup_musa()
    rules = port_rules(setup_musa) if rules is None else rules
    flags = setup_musa.MCC_FLAGS if flags is None else flags
    stage_dir = Path(stage_dir).resolve()
    origins: dict = {}
    ported = musa_port.port_tree(stage_dir, rules, origins)
    compiled = musa_port.compiled_lines(
        [stage_dir / s for s in setup_musa.SOURCES],
        [stage_dir / d for d in INCLUDE_DIRS],
        ported,
        flags,
    )
    code_lines = {path: musa_port.code_only(text).splitlines() for path, text in ported.items()}
    by_file: dict[Path, list] = {}
    for line in compiled:
        by_file.setdefault(line.path, []).append(line)

    # Constants are shared across files (headers define them); a 64-bit or double name is
    # looked up in its own file only, since a name like `candidates` can be a 64-bit tensor
    # in one kernel and a 32-bit shared counter in another.
    constants: dict = {}
    wide_names: dict = {}
    for path, lines in by_file.items():
        wide_names[path] = set()
        for line in lines:
            code = code_lines[path][line.number - 1]
            _constants(code, constants)
            wide_names[path].update(WIDE_DECLARATION.findall(code))

    findings = []
    for path, lines in by_file.items():
        rel = str(path.relative_to(stage_dir))
        aliases, tiles = set(), set()
        text_parts, starts, position = [], [], 0
        for line in lines:
            code = code_lines[path][line.number - 1]
            aliases.update(_aliases(code))
            tiles.update(TILE_BINDING.findall(code))
            starts.append(position)
            text_parts.append(code)
            position += len(code) + 1
        starts.append(position + 1)
        joined = "\n".join(text_parts)
        numbers = [line.number for line in lines]
        for finding in _shuffle_findings(rel, joined, starts):
            finding.line = numbers[finding.line - 1]
            findings.append(finding)
        for line in lines:
            code = code_lines[path][line.number - 1]
            raw = line.text
            directive = re.match(r"\s*#\s*(\w+)", code)
            word = directive.group(1) if directive else ""
            if word in ("if", "ifdef", "ifndef", "elif", "else", "endif", "undef", "pragma"):
                continue
            if word == "include":
                header = musa_port.INCLUDE.match(raw)
                if header and CUDA_HEADER.match(header.group(2)):
                    findings.append(Finding(rel, line.number, "cuda-header", raw))
                continue
            for rule, pattern in LINE_RULES.items():
                if pattern.search(code):
                    findings.append(Finding(rel, line.number, rule, raw))
            if _lane_findings(code, aliases, constants):
                findings.append(Finding(rel, line.number, "lane-mask", raw))
            tile_call = tiles and re.search(
                rf"\b(?:{'|'.join(map(re.escape, sorted(tiles)))})\s*\.\s*\w+\s*\(", code
            )
            if COOP_GROUPS.search(code) or tile_call:
                findings.append(Finding(rel, line.number, "coop-groups", raw))
            if _atomic64_findings(code, wide_names[path]):
                findings.append(Finding(rel, line.number, "atomic-64", raw))
            if WARP_VOTE.search(code):
                findings.append(Finding(rel, line.number, "warp-vote", raw))
            if CUDA_LEFT.search(code):
                findings.append(Finding(rel, line.number, "cuda-left", raw))
        findings += _dead_ptx(rel, lines)
    for finding in findings:  # report the checkout's line numbers, not the ported ones
        if finding.line:
            finding.line = origins[stage_dir / finding.path][finding.line - 1]
    return sorted(findings, key=lambda f: (f.path, f.line, f.rule))


def _asm_statement(text: str, start: int) -> str:
    """From `asm volatile(` at `start` to its closing parenthesis (strings skipped)."""
    depth, index, quote = 0, text.index("asm", start), None
    while index < len(text):
        char = text[index]
        if quote:
            quote = None if char == quote and text[index - 1] != "\\" else quote
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                break
        index += 1
    return text[start : index + 1]


def _dead_ptx(rel: str, lines) -> list[Finding]:
    """`if(0) asm volatile(...)` statements with an output operand ("=...")."""
    findings = []
    for index, line in enumerate(lines):
        match = DEAD_PTX.search(line.text)
        if not match:
            continue
        text = "\n".join(part.text for part in lines[index : index + 6])
        statement = _asm_statement(text, match.start())
        if not re.search(r':\s*"=', statement):
            continue
        if any(opcode in statement for opcode in REVIEWED_PTX):
            continue
        findings.append(Finding(rel, line.number, "dead-ptx", line.text))
    return findings


def lint_flags(setup_musa) -> list[Finding]:
    findings = []
    for list_name in ("MCC_FLAGS", "MUSA_CXX_FLAGS"):
        for flag in getattr(setup_musa, list_name):
            if flag.startswith(NVCC_ONLY_FLAG_PREFIXES):
                findings.append(Finding("setup_musa.py", 0, "nvcc-flag", f"{list_name}: {flag}"))
    return findings


def run(stage_dir: Path, exclude_patch: str | None = None) -> list[Finding]:
    stage(stage_dir, exclude_patch)
    return lint_sources(stage_dir) + lint_flags(load_setup_musa())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", type=Path, help="stage into this directory and keep it")
    parser.add_argument(
        "--exclude-patch", metavar="PREFIX", help="stage without the patches named PREFIX*"
    )
    args = parser.parse_args(argv)
    if args.keep:
        findings = run(args.keep, args.exclude_patch)
    else:
        with tempfile.TemporaryDirectory(prefix="musa-port-lint-") as tmp:
            findings = run(Path(tmp) / "stage", args.exclude_patch)
    for finding in findings:
        print(finding)
    print(f"musa_port_lint: {len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
