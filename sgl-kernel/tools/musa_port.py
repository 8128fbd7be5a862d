"""A model of what mcc compiles: torchada 0.1.103's in-place port of our MUSA sources.

Used by musa_port_lint.py; runs anywhere (no MUSA toolkit, torchada never imported).

The port, as torchada's BuildExtension runs it through torch_musa's SimplePorting:

1. rules = torchada's MAPPING_RULE (read from the installed package's _mappings/), then
   torch_musa's own tables merged over it with dict.update (torch_musa wins on equal
   keys; facts kept in torch_musa_mapping.json); sorted longest key first; torchada then
   replaces the bare "cuda.h" rule by four #include spellings and sorts again (stable).
2. per file: STABLE_TORCH_LIBRARY_IMPL(ns, CUDA, ...) is re-keyed to PrivateUse1; then per
   line, unless the raw line starts with '*' or '/' or contains "cub/", every rule in
   that order is applied with str.replace to the result of the previous one (a shorter
   rule can rewrite what a longer one produced). A logical line that would collapse into
   `#define X X` is kept as it was.

Then `compiled_lines` follows the ported #include graph from the sources, evaluating
#if/#ifdef with what is known about mcc (MCC_UNDEFINED, the -D flags, the tree's own
#defines; anything else is "unknown" and both branches count as compiled).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent
TORCH_MUSA_MAPPING = TOOLS_DIR / "torch_musa_mapping.json"
SOURCE_SUFFIXES = {".cu", ".cuh", ".cc", ".cpp", ".h", ".hpp"}

# torchada drops torch_musa's "cuda.h" rule (it would rename project headers such as
# foo_cuda.h) and ports these include spellings instead.
NARROWED_CUDA_H = [
    ("#include <cuda.h>", "#include <musa.h>"),
    ('#include "cuda.h"', '#include "musa.h"'),
    ("#include <torch/cuda.h>", "#include <torch/musa.h>"),
    ('#include "torch/cuda.h"', '#include "torch/musa.h"'),
]
STABLE_IMPL_CUDA = re.compile(r"(\bSTABLE_TORCH_LIBRARY_IMPL\s*\(\s*[A-Za-z_]\w*\s*,\s*)CUDA(\s*,)")
SELF_DEFINE = re.compile(
    r"^\s*#\s*define\s+(\w+)(?:\([^()]*\))?\s+\(*\s*(\w+)\s*(?:\([^()]*\))?\s*\)*\s*$"
)
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')

# Macros mcc is assumed NOT to define (MUSA's toolkit defines MUSA_VERSION / __MUSACC__
# instead): branches on them are CUDA-only. *Unverified on an mcc install*: if mcc
# defined CUDA_VERSION >= 12090, sampling.cuh would compile cuda::maximum.
MCC_UNDEFINED = frozenset(
    {
        "CUDA_VERSION",
        "CUDART_VERSION",
        "__CUDACC__",
        "__CUDACC_VER_MAJOR__",
        "__CUDACC_VER_MINOR__",
        "__CUDA_ARCH__",
        "__NVCC__",
    }
)
# Defined in one mcc pass and not the other (host vs device), or with a value we do
# not know: both branches are compiled.
MCC_UNKNOWN = frozenset({"__MUSA_ARCH__", "__MUSACC__"})


# ----------------------------------------------------------------------------- rules


def torchada_mapping() -> dict[str, str]:
    """torchada's MAPPING_RULE, loaded from its _mappings/ files without importing torchada
    (whose import patches torch in this process)."""
    spec = importlib.util.find_spec("torchada")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("musa_port: torchada is not installed (pip install 'torchada==0.1.103')")
    mappings = Path(list(spec.submodule_search_locations)[0]) / "_mappings"
    if not (mappings / "__init__.py").is_file():
        raise SystemExit(
            f"musa_port: {mappings} does not exist; torchada older than 0.1.68 has no "
            "_mappings package (use torchada 0.1.103, the version this lint models)"
        )
    name = "_musa_port_torchada_mappings"
    pkg = importlib.util.spec_from_file_location(
        name, mappings / "__init__.py", submodule_search_locations=[str(mappings)]
    )
    module = importlib.util.module_from_spec(pkg)
    sys.modules[name] = module  # its `from . import aten` needs the package registered
    try:
        pkg.loader.exec_module(module)
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
    return dict(module.MAPPING_RULE)


def torch_musa_tables() -> list[dict[str, str]]:
    data = json.loads(TORCH_MUSA_MAPPING.read_text())
    return [table["rules"] for table in data["tables"]]


def port_rules(torchada: dict | None = None, torch_musa: list | None = None):
    """The (key, value) list SimplePorting applies, in its order."""
    merged = dict(torchada_mapping() if torchada is None else torchada)
    for table in torch_musa_tables() if torch_musa is None else torch_musa:
        merged.update(table)
    ordered = sorted(merged.items(), key=lambda kv: len(kv[0]), reverse=True)
    narrowed = [kv for kv in ordered if kv[0] != "cuda.h"] + NARROWED_CUDA_H
    return [
        kv for kv in sorted(narrowed, key=lambda kv: len(kv[0]), reverse=True) if kv[0] != kv[1]
    ]


# ----------------------------------------------------------------------------- porting


def _port_line(line: str, rules) -> str:
    if line.startswith(("*", "/")) or line == "" or "cub/" in line:
        return line
    for key, value in rules:
        if key in line:
            line = line.replace(key, value)
    return line


def _collapses(text: str) -> bool:
    flat = re.sub(r"\\\s*\n\s*", " ", text)
    flat = re.sub(r"/\*.*?\*/", " ", flat, flags=re.DOTALL)
    flat = re.sub(r"//.*", "", flat)
    match = SELF_DEFINE.match(flat)
    return match is not None and match.group(1) == match.group(2)


def port_text(text: str, rules, origins: list | None = None) -> str:
    """The ported text; `origins`, when given, receives the checkout line number of every
    ported line (a rule can expand one line into several)."""
    out, source, ported = [], [], []
    first = 1

    def flush():
        nonlocal first
        chunk = "".join(source if _collapses("".join(ported)) else ported)
        out.append(chunk)
        if origins is not None:
            produced = chunk.count("\n") + (0 if chunk.endswith("\n") or not chunk else 1)
            origins.extend(min(first + i, first + len(source) - 1) for i in range(produced))
        first += len(source)

    for line in STABLE_IMPL_CUDA.sub(r"\1PrivateUse1\2", text).splitlines(keepends=True):
        source.append(line)
        ported.append(_port_line(line, rules))
        if not line.rstrip("\n").endswith("\\"):
            flush()
            source, ported = [], []
    if source:
        flush()
    return "".join(out)


def port_tree(root: Path, rules, origins: dict | None = None) -> dict[Path, str]:
    """Ported text of every portable file under root, keyed by path (root is not changed);
    `origins`, when given, receives each file's line map (see port_text)."""
    result = {}
    for path in sorted(root.rglob("*")):
        if path.suffix in SOURCE_SUFFIXES and path.is_file():
            lines: list[int] = []
            result[path] = port_text(path.read_text(errors="surrogateescape"), rules, lines)
            if origins is not None:
                origins[path] = lines
    return result


# ----------------------------------------------------------------------------- preprocessor

UNKNOWN = None


def _defined_macros(flags) -> dict[str, str]:
    macros = {}
    for flag in flags:
        if flag.startswith("-D"):
            name, _, value = flag[2:].partition("=")
            macros[name] = value or "1"
    return macros


@dataclass
class Macros:
    """What is known about macro definitions while walking the include graph."""

    defined: dict = field(default_factory=dict)  # name -> value text
    unknown: set = field(default_factory=set)

    def state(self, name):
        if name in self.unknown or name in MCC_UNKNOWN:
            return UNKNOWN
        if name in MCC_UNDEFINED:
            return False
        return name in self.defined  # our sources and FlashInfer's headers define the rest


def _evaluate(expr: str, macros: Macros):
    """True / False / UNKNOWN for a #if expression under `macros`."""
    expr = re.sub(r"/\*.*?\*/|//.*", " ", expr)
    unknowns: list[str] = []

    def placeholder(name):
        unknowns.append(name)
        return f"__u{len(unknowns) - 1}"

    def defined(match):
        name = match.group(1) or match.group(2)
        state = macros.state(name)
        if state is UNKNOWN:
            return placeholder("defined " + name)
        return "1" if state else "0"

    expr = re.sub(r"\bdefined\s*\(\s*(\w+)\s*\)|\bdefined\s+(\w+)", defined, expr)

    def ident(match):
        name = match.group(0)
        if re.fullmatch(r"__u\d+", name):
            return name
        state = macros.state(name)
        if state is True:
            value = re.sub(r"(?<=\d)[uUlL]+\b", "", macros.defined[name].strip())
            state = value if re.fullmatch(r"\d+", value) else UNKNOWN
        if state is UNKNOWN:
            return placeholder(name)
        return state or "0"

    expr = re.sub(r"\b[A-Za-z_]\w*\b", ident, expr)
    expr = re.sub(r"\b(\d+)[uUlL]+\b", r"\1", expr)
    expr = expr.replace("&&", " and ").replace("||", " or ")
    expr = re.sub(r"!(?!=)", " not ", expr)
    choices = [(0, 1) if u.startswith("defined ") else (0, 1, 10**9) for u in unknowns]
    results = set()
    for values in itertools.islice(itertools.product(*choices), 256):
        env = {f"__u{i}": v for i, v in enumerate(values)}
        try:
            results.add(bool(eval(expr, {"__builtins__": {}}, env)))  # noqa: S307
        except Exception:
            return UNKNOWN
    return results.pop() if len(results) == 1 else UNKNOWN


@dataclass
class Frame:
    parent_live: object  # True / UNKNOWN (a frame inside a dead region is all dead)
    taken: object  # some earlier branch was True (False / True / UNKNOWN)
    live: object  # this branch: True / False / UNKNOWN


def _logical_lines(text: str):
    """(first line number, joined text) per logical line (backslash continuations)."""
    number, parts = 1, []
    for index, line in enumerate(text.splitlines(), 1):
        if not parts:
            number = index
        parts.append(line)
        if not line.endswith("\\"):
            yield number, " ".join(p.rstrip("\\") for p in parts), parts
            parts = []
    if parts:
        yield number, " ".join(parts), parts


def _and(a, b):
    if a is False or b is False:
        return False
    if a is UNKNOWN or b is UNKNOWN:
        return UNKNOWN
    return True


@dataclass
class CompiledLine:
    path: Path
    number: int
    text: str  # the ported physical line
    directive: bool  # a preprocessor line


def compiled_lines(sources, include_dirs, ported: dict[Path, str], flags) -> list[CompiledLine]:
    """Lines mcc compiles (or may compile: unknown branches count), following #include in
    order from each source, each file once (FlashInfer's headers have include guards)."""
    macros = Macros(defined=_defined_macros(flags))
    seen: set[Path] = set()
    result: list[CompiledLine] = []

    def resolve(current: Path, quote: str, name: str):
        bases = ([current.parent] if quote == '"' else []) + list(include_dirs)
        for base in bases:
            candidate = (base / name).resolve()
            if candidate in ported:
                return candidate
        return None  # a toolkit or torch header: not ours to check

    def walk(path: Path):
        if path in seen:
            return
        seen.add(path)
        stack: list[Frame] = []
        for number, logical, physical in _logical_lines(ported[path]):
            live = stack[-1].live if stack else True
            stripped = logical.strip()
            directive = re.match(r"#\s*(\w+)\s*(.*)", stripped)
            word, rest = (directive.group(1), directive.group(2)) if directive else ("", "")
            if word in ("if", "ifdef", "ifndef"):
                if word == "if":
                    cond = _evaluate(rest, macros)
                else:
                    state = macros.state(rest.split()[0]) if rest.split() else UNKNOWN
                    cond = state if word == "ifdef" or state is UNKNOWN else not state
                branch = _and(live, cond)
                stack.append(Frame(live, cond, branch))
            elif word == "elif" and stack:
                frame = stack[-1]
                cond = _evaluate(rest, macros)
                if frame.taken is True:
                    frame.live = False
                else:
                    mine = cond if frame.taken is False else _and(UNKNOWN, cond)
                    frame.live = _and(frame.parent_live, mine)
                    frame.taken = (
                        True
                        if frame.taken is True or cond is True
                        else (UNKNOWN if cond is UNKNOWN or frame.taken is UNKNOWN else False)
                    )
            elif word == "else" and stack:
                frame = stack[-1]
                mine = {True: False, False: True}.get(frame.taken, UNKNOWN)
                frame.live = _and(frame.parent_live, mine)
                frame.taken = True
            elif word == "endif" and stack:
                stack.pop()
            if live is False and word not in ("elif", "else", "endif"):
                continue
            if word == "define" and live is not False:
                name = re.match(r"(\w+)(.*)", rest)
                if name:
                    if live is True:
                        macros.defined[name.group(1)] = name.group(2).strip() or "1"
                    else:
                        macros.unknown.add(name.group(1))
            elif word == "undef" and live is not False:
                macros.defined.pop(rest.split()[0], None)
            for offset, text in enumerate(physical):
                result.append(CompiledLine(path, number + offset, text, bool(directive)))
            if word == "include":
                include = INCLUDE.match(stripped)
                target = include and resolve(path, include.group(1), include.group(2))
                if target:
                    walk(target)

    for source in sources:
        walk(Path(source).resolve())
    return result


# ----------------------------------------------------------------------------- code only

_TOKENS = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.DOTALL)


def code_only(text: str) -> str:
    """text with comments blanked and string/char literals emptied; line numbers kept."""

    def blank(match):
        token = match.group(0)
        if token.startswith("/"):
            return re.sub(r"[^\n]", " ", token)
        return token[0] * 2

    return _TOKENS.sub(blank, text)
