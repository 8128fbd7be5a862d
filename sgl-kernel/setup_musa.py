"""Build sgl_kernel.common_ops (the sampling ops) for MUSA or, on other hosts, CUDA.

    cd sgl-kernel && python setup_musa.py install         # MUSA (arch: see musa_arch_choice)
    pip install --no-build-isolation -e sgl-kernel        # editable, either platform

One source tree, two toolchains:

* torch_musa importable -> MUSA. torchada is imported before torch.utils.cpp_extension
  (it swaps in the MUSA extension classes and rewrites CUDA spellings in the sources
  *in place*), so we compile a staged copy (musa_stage_dir) and never touch the
  checkout. mcc flags; the arch of the visible device (MTGPU_TARGET or
  TORCH_MUSA_ARCH_LIST naming another stop the build unless
  SGL_KERNEL_MUSA_ARCH_OVERRIDE=1), else MTGPU_TARGET / TORCH_MUSA_ARCH_LIST, else
  mp_31; one log line says which and why (musa_arch_choice). Before compiling, the
  build lints the stage torchada ported (check_ported_stage); another torchada, or
  torch_musa porting tables other than tools/torch_musa_mapping.json, stop it unless
  SGL_KERNEL_MUSA_PORT_OVERRIDE=1.
* otherwise -> CUDA through CUDAExtension and nvcc; arch from TORCH_CUDA_ARCH_LIST
  (9.0 when it is unset and no GPU is visible).

Both compile FlashInfer 0.5.3's sampling headers, staged into 3rdparty/flashinfer with
our patches from 3rdparty/patches (see stage_flashinfer).

Importing this file has no side effects, so another build script (upstream SGLang's
sgl-kernel/setup_musa.py) can reuse the sampling pieces:

    spec = importlib.util.spec_from_file_location("sampling_build", "<this file>")
    sampling_build = importlib.util.module_from_spec(spec); spec.loader.exec_module(sampling_build)
    parts = sampling_build.sampling_build_parts()   # stages the patched FlashInfer headers
    sources += parts["sources"]; include_dirs += parts["include_dirs"]
    # and build with sampling_build.with_port_rules(BuildExtension, stage_dir) on MUSA
    # (stage_dir: the ported tree it compiles, linted before compiling; None: no lint)
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parent
REPO_DIR = KERNEL_DIR.parent
THIRDPARTY_DIR = REPO_DIR / "3rdparty"
PATCH_DIR = THIRDPARTY_DIR / "patches"
FLASHINFER_DIR = THIRDPARTY_DIR / "flashinfer"  # git-ignored staging area
WHEEL_CACHE_DIR = THIRDPARTY_DIR / ".cache"  # git-ignored download cache

FLASHINFER_VERSION = "0.5.3"
FLASHINFER_WHEEL = f"flashinfer_python-{FLASHINFER_VERSION}-py3-none-any.whl"
FLASHINFER_SHA256 = "b601293b72f9138bad173edc28df84b9f239a013be974e2e79d4ba98aeb38cf5"
# The headers sampling.cuh pulls in; nothing else of FlashInfer is compiled.
FLASHINFER_HEADERS = (
    "sampling.cuh",
    "utils.cuh",
    "vec_dtypes.cuh",
    "math.cuh",
    "allocator.h",
    "exception.h",
)
WHEEL_HEADER_PREFIX = "flashinfer/data/include/flashinfer/"

# Relative to sgl-kernel/. The registration file is ours; a build that already has its
# own (upstream's common_extension_musa.cc) takes only SAMPLING_SOURCES.
SAMPLING_SOURCES = ("csrc/sampling/sampling.cu",)
# Speculative decoding (register_speculative_ops): a registration file of its own adds
# `register_speculative_ops(m);` next to `register_sampling_ops(m);` to take these too.
SPECULATIVE_SOURCES = ("csrc/speculative/speculative_sampling.cu",)
SOURCES = ("csrc/common_extension_musa.cc",) + SAMPLING_SOURCES + SPECULATIVE_SOURCES
EXTENSION_NAME = "sgl_kernel.common_ops"

# Moore Threads architectures we build for: mp_31 = MTT S5000, mp_22 = MTT S4000.
MUSA_ARCHS = {"mp_31": "MTT S5000", "mp_22": "MTT S4000"}
DEFAULT_MUSA_ARCH = "mp_31"
DEFAULT_CUDA_ARCH_LIST = "9.0"

# torchada versions: 0.1.103 is the one whose porting code the lint models and the
# tests run (tools/musa_port.py, tests/test_musa_port_lint.py). Older than 0.1.68
# (upstream SGLang's floor) is refused: 0.1.56 has no _mappings package and ports into
# a <dir>_musa mirror with .mu renames, so the staged sources would compile unported.
TORCHADA_CHECKED = "0.1.103"
TORCHADA_MINIMUM = (0, 1, 68)

# torchada 0.1.103 has no rule for these runtime names, which FlashInfer 0.5.3's
# launchers use; torchada's BuildExtension takes project rules through
# get_mapping_rule() (with_port_rules). The MUSA names exist in MUSA's runtime
# (musaLaunchKernelEx appears in MUPTI's callback list); unverified with mcc here.
EXTRA_PORT_RULES = {
    "cudaLaunchKernelEx": "musaLaunchKernelEx",
    "cudaLaunchKernel": "musaLaunchKernel",
    "cudaErrorInvalidValue": "musaErrorInvalidValue",
    "cudaDevAttrComputeCapabilityMajor": "musaDevAttrComputeCapabilityMajor",
    "cudaDevAttrComputeCapabilityMinor": "musaDevAttrComputeCapabilityMinor",
}

# On CUDA the C++ standard is left to torch's builder: it matches torch's headers
# (C++17 up to torch 2.10, C++20 after). torch_musa's torch still uses C++17.
CXX_FLAGS = ["-O3"]
# torch builds with the half/bfloat16 operators disabled; FlashInfer needs them.
NVCC_FLAGS = [
    "-O3",
    "--expt-relaxed-constexpr",
    "-U__CUDA_NO_HALF_OPERATORS__",
    "-U__CUDA_NO_HALF_CONVERSIONS__",
    "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-U__CUDA_NO_HALF2_OPERATORS__",
]
# mcc flags, reviewed against upstream SGLang's MUSA build. torchada renames the "nvcc"
# key to "mcc" but does not translate flags: nothing nvcc-only here (the lint checks).
MCC_FLAGS = [
    "-x",
    "musa",  # compile .cu/.cc as MUSA
    "-mtgpu",
    "-O3",
    "-Od3",  # mcc's device-code optimisation level, as upstream passes it
    "-std=c++17",  # torch_musa's torch headers are C++17
    # FlashInfer reads half/fp8 vectors through uint32_t pointers; clang-based mcc
    # would otherwise optimise on strict aliasing. Upstream passes it too.
    "-fno-strict-aliasing",
    "-DUSE_MUSA",
    # Not taken from upstream:
    # -ffast-math: our patches 0002/0004 rely on NaN comparisons (a pivot loop that ends
    #   on NaN, `p > 0` rejecting NaN); fast-math lets the compiler assume no NaN.
    # -fmusa-flush-denormals-to-zero: probabilities below 1.2e-38 occur in 128k
    #   vocabularies; flushing them would make MUSA sample differently from the CUDA
    #   build and the CPU reference.
    # -DNDEBUG: the CUDA build does not define it either (one code path, FlashInfer's
    #   launch-error report included, on both).
]
# "force_mcc" makes torchada compile the .cc registration file with mcc as well.
MUSA_CXX_FLAGS = ["-O3", "-std=c++17", "-DUSE_MUSA", "force_mcc"]

# Include roots torchada 0.1.103 does not port (it treats them as system headers):
# a staged tree there would compile with CUDA spellings. Source parents are always
# ported; include roots are not, so the whole stage must stay clear of these.
TORCHADA_SKIPPED_PREFIXES = ("/usr/", "/opt/")
TORCHADA_SKIPPED_PARTS = ("site-packages", "dist-packages")
STAGE_DIR_VARIABLE = "SGL_KERNEL_MUSA_STAGE_DIR"
# Build for an arch other than the visible device's on purpose (MTGPU_TARGET or
# TORCH_MUSA_ARCH_LIST naming it).
ARCH_OVERRIDE_VARIABLE = "SGL_KERNEL_MUSA_ARCH_OVERRIDE"
# Build with a torchada or torch_musa port tables other than the ones this tree was
# checked with (TORCHADA_CHECKED, tools/torch_musa_mapping.json).
PORT_OVERRIDE_VARIABLE = "SGL_KERNEL_MUSA_PORT_OVERRIDE"


class BuildError(RuntimeError):
    """A build precondition failed; the message says what to do."""


# --------------------------------------------------------------------------- FlashInfer


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _patches() -> list[Path]:
    return sorted(PATCH_DIR.glob("*.patch"))


def _stamp(origin: str, headers: Path | None = None) -> str:
    """What the staged headers were made from: the source, every source header's hash
    (for a FLASHINFER_SOURCE_DIR tree, whose files can change under the same path; the
    wheel is pinned by its own hash) and every patch's hash."""
    lines = [f"origin {origin}"]
    if headers is not None:
        lines += [f"header {name} {_sha256(headers / name)}" for name in FLASHINFER_HEADERS]
    lines += [f"patch {p.name} {_sha256(p)}" for p in _patches()]
    return "\n".join(lines) + "\n"


def _download_wheel() -> Path:
    wheel = WHEEL_CACHE_DIR / FLASHINFER_WHEEL
    if wheel.exists():
        return wheel
    WHEEL_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["-d", str(WHEEL_CACHE_DIR), f"flashinfer-python=={FLASHINFER_VERSION}"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not wheel.exists():
        raise BuildError(
            f"could not download {FLASHINFER_WHEEL} (pip exit code {result.returncode}):\n"
            f"{result.stderr.strip()[-2000:]}\n"
            f"Without network access, put the wheel at {wheel} or point FLASHINFER_SOURCE_DIR "
            "at a FlashInfer 0.5.3 source tree."
        )
    return wheel


def _copy_headers_from_wheel(wheel: Path, dest: Path) -> None:
    actual = _sha256(wheel)
    if actual != FLASHINFER_SHA256:
        raise BuildError(
            f"{wheel} has sha256 {actual}, expected {FLASHINFER_SHA256} "
            f"(flashinfer-python {FLASHINFER_VERSION}); delete it and build again"
        )
    with zipfile.ZipFile(wheel) as zf:
        for name in FLASHINFER_HEADERS:
            (dest / name).write_bytes(zf.read(WHEEL_HEADER_PREFIX + name))


def _source_headers(source_dir: Path) -> Path:
    """The directory of FlashInfer's headers in a source tree (or an unpacked wheel)."""
    candidates = [source_dir / "include" / "flashinfer", source_dir / WHEEL_HEADER_PREFIX]
    found = next((c for c in candidates if (c / "sampling.cuh").is_file()), None)
    if found is None:
        raise BuildError(
            f"FLASHINFER_SOURCE_DIR={source_dir} holds no include/flashinfer/sampling.cuh; "
            f"point it at a FlashInfer {FLASHINFER_VERSION} source tree"
        )
    missing = [name for name in FLASHINFER_HEADERS if not (found / name).is_file()]
    if missing:
        raise BuildError(
            f"FLASHINFER_SOURCE_DIR={source_dir} lacks {', '.join(missing)} in {found}; "
            f"point it at a FlashInfer {FLASHINFER_VERSION} source tree"
        )
    return found


def _copy_headers_from_source(source_dir: Path, dest: Path) -> None:
    found = _source_headers(source_dir)
    for name in FLASHINFER_HEADERS:
        shutil.copyfile(found / name, dest / name)


def _apply_patches(include_root: Path, patches=None) -> None:
    for patch in _patches() if patches is None else patches:
        cmd = ["patch", "-p1", "--batch", "--forward", "--quiet", "-d", str(include_root)]
        try:
            result = subprocess.run(cmd + ["-i", str(patch)], capture_output=True, text=True)
        except FileNotFoundError as err:
            raise BuildError("the `patch` program is required (apt-get install patch)") from err
        if result.returncode != 0:
            raise BuildError(
                f"{Path(patch).name} does not apply to FlashInfer {FLASHINFER_VERSION}:\n"
                f"{result.stdout}{result.stderr}"
            )


def stage_flashinfer_into(dest: Path, patches=None, env: dict | None = None) -> Path:
    """Copy the pinned FlashInfer headers into dest/include/flashinfer and apply `patches`
    (default: every 3rdparty/patches/*.patch, in name order); return dest/include.

    For tools that need a specific patch set (the GPU identity check stages with and
    without one patch). dest must not exist yet or be empty.
    """
    env = os.environ if env is None else env
    source_dir = env.get("FLASHINFER_SOURCE_DIR")
    headers = Path(dest) / "include" / "flashinfer"
    headers.mkdir(parents=True, exist_ok=True)
    if source_dir:
        _copy_headers_from_source(Path(source_dir), headers)
    else:
        _copy_headers_from_wheel(_download_wheel(), headers)
    _apply_patches(Path(dest), patches)
    return Path(dest) / "include"


def stage_flashinfer(env: dict | None = None) -> Path:
    """Stage the pinned, patched FlashInfer headers; return the include directory.

    Source: FLASHINFER_SOURCE_DIR if set, else the sha256-checked 0.5.3 wheel (cached in
    3rdparty/.cache, downloaded with pip when absent). Staging happens in a temporary
    directory that replaces 3rdparty/flashinfer only once every patch applied, so a
    failure never leaves a half-staged tree; an up-to-date stage is reused.
    """
    env = os.environ if env is None else env
    source_dir = env.get("FLASHINFER_SOURCE_DIR")
    if source_dir:
        origin = f"source {Path(source_dir).resolve()}"
        stamp = _stamp(origin, _source_headers(Path(source_dir)))
    else:
        stamp = _stamp(f"wheel {FLASHINFER_SHA256}")
    stamp_file = FLASHINFER_DIR / "STAGED_FROM"
    include_dir = FLASHINFER_DIR / "include"
    if stamp_file.is_file() and stamp_file.read_text() == stamp:
        return include_dir

    THIRDPARTY_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=THIRDPARTY_DIR, prefix=".flashinfer-") as tmp:
        stage = Path(tmp) / "flashinfer"
        stage_flashinfer_into(stage, env=env)
        (stage / "STAGED_FROM").write_text(stamp)
        if FLASHINFER_DIR.exists():
            shutil.rmtree(FLASHINFER_DIR)
        stage.rename(FLASHINFER_DIR)
    return include_dir


def sampling_build_parts(env: dict | None = None) -> dict:
    """What a build script adds to compile the sampling ops: sources (relative to
    sgl-kernel/) and include dirs (ours and the staged, patched FlashInfer headers).
    Stages FlashInfer (see stage_flashinfer); nothing else changes."""
    return {
        "sources": list(SAMPLING_SOURCES),
        "include_dirs": [str(KERNEL_DIR / "include"), str(stage_flashinfer(env))],
    }


# --------------------------------------------------------------------------- platforms


def is_musa_host() -> bool:
    return importlib.util.find_spec("torch_musa") is not None


def visible_musa_arch() -> str | None:
    """mp_{major}{minor} of MUSA device 0, or None without torch_musa or a device."""
    try:
        import torch
        import torch_musa  # noqa: F401  (registers torch.musa)

        if not torch.musa.is_available():
            return None
        major, minor = torch.musa.get_device_capability(0)
    except Exception:  # no driver, no device, an old torch_musa: fall back to the default
        return None
    return f"mp_{major}{minor}"


def _supported(arch: str, what: str) -> str:
    if arch not in MUSA_ARCHS:
        known = ", ".join(f"{a} ({card})" for a, card in MUSA_ARCHS.items())
        raise BuildError(f"{what} is not supported; use one of: {known}")
    return arch


def _arch_list_entries(value: str) -> list[str]:
    return [v.strip() for v in value.replace(",", ";").split(";") if v.strip()]


def _requested_arch(env: dict) -> tuple[str, str] | None:
    """(arch, the variable that asked for it): MTGPU_TARGET, else a one-arch
    TORCH_MUSA_ARCH_LIST; None when neither asks for one. Both set and disagreeing, or a
    TORCH_MUSA_ARCH_LIST of several archs: BuildError (the build has one target)."""
    target = env.get("MTGPU_TARGET")
    listed = env.get("TORCH_MUSA_ARCH_LIST")
    entries = _arch_list_entries(listed) if listed is not None else None
    if target is not None:
        _supported(target, f"MTGPU_TARGET={target!r}")
        if entries is not None and entries != [target.removeprefix("mp_")]:
            raise BuildError(
                f"TORCH_MUSA_ARCH_LIST={listed!r} disagrees with MTGPU_TARGET={target!r}; "
                f"unset it or set TORCH_MUSA_ARCH_LIST={target.removeprefix('mp_')}"
            )
        return target, f"MTGPU_TARGET={target}"
    if entries is None:
        return None
    if len(entries) != 1:
        raise BuildError(
            f"TORCH_MUSA_ARCH_LIST={listed!r} names {len(entries)} archs; this build compiles "
            "for one: unset it (the visible device decides) or name one arch"
        )
    arch = f"mp_{entries[0]}"
    _supported(arch, f"TORCH_MUSA_ARCH_LIST={listed!r} ({arch})")
    return arch, f"TORCH_MUSA_ARCH_LIST={listed}"


def musa_arch_choice(env: dict, device_arch: str | None = None) -> tuple[str, str]:
    """(arch, why) of the MUSA build. The visible device decides; MTGPU_TARGET or
    TORCH_MUSA_ARCH_LIST naming another arch stop the build (naming both), unless
    SGL_KERNEL_MUSA_ARCH_OVERRIDE=1 says the other card is meant. Without a device: the
    variables, else mp_31, and `why` says which."""
    requested = _requested_arch(env)
    override = env.get(ARCH_OVERRIDE_VARIABLE, "") == "1"
    if device_arch is not None:
        if requested is None or requested[0] == device_arch:
            _supported(device_arch, f"the visible MUSA device ({device_arch})")
            agree = f", as {requested[1]} asks" if requested else ""
            return device_arch, f"the visible MUSA device is {device_arch}{agree}"
        arch, source = requested
        if not override:
            raise BuildError(
                f"{source} asks for {arch} ({MUSA_ARCHS[arch]}) but the visible MUSA device is "
                f"{device_arch}: the build would fail at the first kernel call on this card "
                f"('invalid device function'). Unset it to build for {device_arch}, or set "
                f"{ARCH_OVERRIDE_VARIABLE}=1 to build for {arch} on purpose"
            )
        return arch, (
            f"{source}, overriding the visible device {device_arch} ({ARCH_OVERRIDE_VARIABLE}=1)"
        )
    if requested is not None:
        return requested[0], f"{requested[1]} (no MUSA device visible)"
    return DEFAULT_MUSA_ARCH, (
        "the default: no MUSA device visible and neither MTGPU_TARGET nor "
        "TORCH_MUSA_ARCH_LIST set; set MTGPU_TARGET=mp_22 for an MTT S4000"
    )


def musa_arch(env: dict, device_arch: str | None = None) -> str:
    """The arch musa_arch_choice picks."""
    return musa_arch_choice(env, device_arch)[0]


def arch_log_line(arch: str, why: str) -> str:
    """The build log's one line on the arch."""
    return f"setup_musa.py: building for {arch} ({MUSA_ARCHS[arch]}): {why}"


def torch_musa_arch_list(arch: str, env: dict) -> str:
    """TORCH_MUSA_ARCH_LIST for `arch` ("31" for mp_31). torch_musa's MUSAExtension adds
    --offload-arch for every visible device when the variable is unset, which would put
    a second arch next to ours; a different value already set is an error."""
    value = arch.removeprefix("mp_")
    current = env.get("TORCH_MUSA_ARCH_LIST")
    if current is not None and _arch_list_entries(current) != [value]:
        raise BuildError(
            f"TORCH_MUSA_ARCH_LIST={current!r} disagrees with the target arch {arch}; "
            f"unset it or set TORCH_MUSA_ARCH_LIST={value}"
        )
    return value


def _within(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # one relative, one absolute, or different drives
        return False


def torchada_exclusions(env: dict) -> tuple[list[str], list[str]]:
    """The roots and bare names torchada 0.1.103 reads from TORCHADA_EXCLUDE_DIRS.

    Facts of its behaviour (read from the installed 0.1.103, not imported): entries are
    split on os.pathsep and commas and stripped; each is expanded with $VAR and ~; an
    expanded entry that is absolute or holds a path separator is a root (made absolute
    against the current directory, symlinks resolved); any other entry is a name, kept
    *unexpanded*, matching that directory name anywhere in a path, and if it is an
    importable module, the directory of its file is a root as well. torchada imports the
    module to learn that directory; we only look it up (find_spec), which gives the same
    file without running the module."""
    roots, names = [], []
    value = env.get("TORCHADA_EXCLUDE_DIRS", "")
    for item in (part.strip() for part in re.split(rf"[{re.escape(os.pathsep)},]", value)):
        if not item:
            continue
        expanded = os.path.expanduser(_expand_vars(item, env))
        if os.path.isabs(expanded) or os.sep in expanded:
            roots.append(os.path.realpath(os.path.abspath(expanded)))
            continue
        names.append(item)
        try:
            spec = importlib.util.find_spec(item)
        except (ImportError, ValueError, AttributeError):
            spec = None
        origin = getattr(spec, "origin", None)
        if spec is not None and spec.has_location and origin:
            roots.append(os.path.realpath(os.path.dirname(origin)))
    return roots, names


def _expand_vars(text: str, env: dict) -> str:
    """os.path.expandvars against `env` (torchada expands against the build's environment,
    which is `env` here): $NAME and ${NAME} replaced when set, left as written when not."""

    def replace(match):
        name = match.group(1) or match.group(2)
        return env.get(name, match.group(0))

    return re.sub(r"\$(?:(\w+)|\{([^}]*)\})", replace, text, flags=re.ASCII)


def torchada_skips(path: Path, env: dict) -> bool:
    """Whether torchada 0.1.103 would leave an include root at `path` unported: a path
    (symlinks resolved) that starts with /usr/ or /opt/ or contains site-packages or
    dist-packages anywhere, or that contains or lies inside a TORCHADA_EXCLUDE_DIRS root,
    or has a TORCHADA_EXCLUDE_DIRS name among its directory names (torchada_exclusions)."""
    real = os.path.realpath(os.path.abspath(path))
    if real.startswith(TORCHADA_SKIPPED_PREFIXES) or any(
        part in real for part in TORCHADA_SKIPPED_PARTS
    ):
        return True
    roots, names = torchada_exclusions(env)
    if any(_within(real, root) or _within(root, real) for root in roots):
        return True
    parts = real.split(os.sep)
    return any(name in parts for name in names)


def musa_stage_dir(env: dict) -> Path:
    """Where the MUSA build stages what it compiles: sgl-kernel/build/musa_src, unless
    torchada would not port it there (a checkout under /opt, /usr or site-packages);
    then SGL_KERNEL_MUSA_STAGE_DIR, else a directory in the system temp dir."""
    chosen = env.get(STAGE_DIR_VARIABLE)
    candidates = [Path(chosen)] if chosen else [KERNEL_DIR / "build" / "musa_src"]
    if not chosen:
        tag = hashlib.sha256(str(KERNEL_DIR).encode()).hexdigest()[:12]
        candidates.append(Path(tempfile.gettempdir()) / f"sgl-kernel-musa-src-{tag}")
    for candidate in candidates:
        if not torchada_skips(candidate, env):
            return candidate
    raise BuildError(
        f"torchada does not port sources under {', '.join(str(c) for c in candidates)} "
        "(it skips include roots under /usr/, /opt/, any site-packages or dist-packages "
        f"path and TORCHADA_EXCLUDE_DIRS); set {STAGE_DIR_VARIABLE} to a directory outside them"
    )


def _override(env: dict, variable: str) -> bool:
    return env.get(variable, "") == "1"


def check_torchada_version(version: str, env: dict | None = None) -> str | None:
    """BuildError for a torchada older than 0.1.68, and for one other than the checked
    0.1.103 unless SGL_KERNEL_MUSA_PORT_OVERRIDE=1 (then a warning to print)."""
    env = {} if env is None else env
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:3])
    if numbers < TORCHADA_MINIMUM:
        raise BuildError(
            f"torchada {version} is too old: before 0.1.68 it ports into a <dir>_musa mirror "
            f"and has no _mappings package; pip install torchada=={TORCHADA_CHECKED}"
        )
    if version == TORCHADA_CHECKED:
        return None
    message = (
        f"torchada {version} is not the checked {TORCHADA_CHECKED}: its porting rules may "
        "differ from the ones the porting lint and the tests verified"
    )
    if not _override(env, PORT_OVERRIDE_VARIABLE):
        raise BuildError(
            f"{message}; pip install torchada=={TORCHADA_CHECKED}, or set "
            f"{PORT_OVERRIDE_VARIABLE}=1 to build with it anyway (the build still lints "
            "the ported sources)"
        )
    return f"setup_musa.py: warning: {message} ({PORT_OVERRIDE_VARIABLE}=1)"


def torch_musa_mapping_dir() -> Path | None:
    """torch_musa's utils/mapping/ directory (its porting tables), found without importing
    torch_musa; None when torch_musa or the directory is absent."""
    try:
        spec = importlib.util.find_spec("torch_musa")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        mapping = Path(location) / "utils" / "mapping"
        if mapping.is_dir():
            return mapping
    return None


def _sources_text(stage_dir: Path) -> str:
    suffixes = {".cu", ".cuh", ".cc", ".cpp", ".h", ".hpp"}
    return "\n".join(
        p.read_text(errors="replace")
        for p in sorted(Path(stage_dir).rglob("*"))
        if p.suffix in suffixes and p.is_file()
    )


def torch_musa_mapping_differences(
    mapping_dir: Path, stage_dir: Path, verified: dict | None = None
) -> list[str]:
    """How the installed torch_musa's porting tables differ from the ones this tree was
    verified with (tools/torch_musa_mapping.json), as far as it can change our port.

    torch_musa's SimplePorting merges every *.json of mapping_dir but general.json over
    torchada's rules. A recorded table: missing, or an entry missing or changed, is a
    difference; so is an extra entry in a table recorded whole ("complete"), or, in a table
    recorded in part, an extra entry whose key occurs in the staged sources. A table we did
    not record: any entry whose key occurs in the staged sources."""
    import json

    if verified is None:
        verified = json.loads((KERNEL_DIR / "tools" / "torch_musa_mapping.json").read_text())
    text = _sources_text(stage_dir)
    differences = []
    recorded = {}
    for table in verified["tables"]:
        recorded[table["file"]] = table
    for path in sorted(Path(mapping_dir).glob("*.json")):
        if path.name == "general.json" or path.name in recorded:
            continue
        try:
            rules = json.loads(path.read_text())
        except ValueError as err:
            differences.append(f"{path.name}: not readable as JSON ({err})")
            continue
        hits = sorted(k for k in rules if isinstance(k, str) and k and k in text)
        if hits:
            differences.append(
                f"{path.name}: a table the tree was not checked with, with rules for "
                f"{', '.join(hits[:5])} (in our sources)"
            )
    for name, table in recorded.items():
        path = Path(mapping_dir) / name
        if not path.is_file():
            differences.append(f"{name}: missing (the tree was checked with it)")
            continue
        try:
            installed = json.loads(path.read_text())
        except ValueError as err:
            differences.append(f"{name}: not readable as JSON ({err})")
            continue
        for key, value in table["rules"].items():
            if key not in installed:
                differences.append(f"{name}: no rule for {key!r} (checked: {value!r})")
            elif installed[key] != value:
                differences.append(f"{name}: {key!r} -> {installed[key]!r} (checked: {value!r})")
        extra = sorted(k for k in installed if k not in table["rules"])
        if not table.get("complete", False):
            extra = [k for k in extra if k and k in text]
        for key in extra:
            differences.append(f"{name}: a rule the tree was not checked with: {key!r}")
    return differences


def check_torch_musa_mapping(stage_dir: Path, env: dict, mapping_dir=None) -> str | None:
    """BuildError when torch_musa's installed tables differ (torch_musa_mapping_differences)
    unless SGL_KERNEL_MUSA_PORT_OVERRIDE=1 (then a warning to print); None when they
    agree or torch_musa's mapping directory is absent."""
    mapping_dir = torch_musa_mapping_dir() if mapping_dir is None else mapping_dir
    if mapping_dir is None:
        return None
    differences = torch_musa_mapping_differences(mapping_dir, stage_dir)
    if not differences:
        return None
    listing = "\n  ".join(differences)
    message = (
        f"torch_musa's porting tables in {mapping_dir} differ from the ones this tree was "
        f"checked with (sgl-kernel/tools/torch_musa_mapping.json):\n  {listing}"
    )
    if not _override(env, PORT_OVERRIDE_VARIABLE):
        raise BuildError(
            f"{message}\nUpdate the JSON after checking the new rules with "
            f"tools/musa_port_lint.py, or set {PORT_OVERRIDE_VARIABLE}=1 to build anyway "
            "(the build still lints the ported sources)"
        )
    return f"setup_musa.py: warning: {message}\n({PORT_OVERRIDE_VARIABLE}=1)"


def lint_ported_stage(stage_dir: Path) -> list:
    """The porting lint's source rules (and its flag rule) over a stage torchada has
    already ported in place: no second port (no rules), the sources and include roots
    the build compiles, the #if branches mcc compiles. Findings, empty when clean."""
    spec = importlib.util.spec_from_file_location(
        "musa_port_lint_in_build", KERNEL_DIR / "tools" / "musa_port_lint.py"
    )
    lint = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = lint  # dataclasses look their module up
    try:
        spec.loader.exec_module(lint)
        findings = lint.lint_sources(Path(stage_dir), rules=[])
        return findings + lint.lint_flags(lint.load_setup_musa())
    finally:
        sys.modules.pop(spec.name, None)


def check_ported_stage(stage_dir: Path) -> None:
    """BuildError listing every lint finding in the ported stage; prints one line when
    there is none."""
    findings = lint_ported_stage(stage_dir)
    if findings:
        shown = "\n  ".join(str(f) for f in findings[:50])
        more = f"\n  ... and {len(findings) - 50} more" if len(findings) > 50 else ""
        raise BuildError(
            f"the ported sources in {stage_dir} fail the porting lint "
            f"({len(findings)} finding(s)); mcc would compile a mis-ported tree:\n  "
            f"{shown}{more}"
        )
    print(f"setup_musa.py: porting lint: 0 findings in the ported stage {stage_dir}")


def stage_musa_sources(flashinfer_include: Path, stage_dir: Path) -> Path:
    """Copy what the MUSA build compiles into stage_dir (torchada rewrites it in place)."""
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    shutil.copytree(KERNEL_DIR / "csrc", stage_dir / "csrc")
    shutil.copytree(KERNEL_DIR / "include", stage_dir / "include")
    shutil.copytree(flashinfer_include, stage_dir / "flashinfer_include")
    return stage_dir


def musa_extension_kwargs(arch: str, stage_dir: Path) -> dict:
    """Sources, include dirs and flags of the MUSA extension, relative to nothing in the checkout."""
    return {
        "name": EXTENSION_NAME,
        "sources": [os.path.relpath(stage_dir / s, KERNEL_DIR) for s in SOURCES],
        "include_dirs": [str(stage_dir / "include"), str(stage_dir / "flashinfer_include")],
        "extra_compile_args": {
            "cxx": list(MUSA_CXX_FLAGS),
            "nvcc": MCC_FLAGS + [f"--cuda-gpu-arch={arch}"],
        },
    }


def with_port_rules(build_extension, stage_dir: Path | None = None):
    """torchada's BuildExtension with EXTRA_PORT_RULES added to its porting rules. With
    `stage_dir`, build_extensions() (which torchada's run() calls after porting the
    stage in place) first lints the ported stage and stops on any finding."""

    class SamplingPortingBuildExtension(build_extension):
        def get_mapping_rule(self):
            base = super().get_mapping_rule() if hasattr(super(), "get_mapping_rule") else {}
            return {**base, **EXTRA_PORT_RULES}

        def build_extensions(self):
            if stage_dir is not None:
                try:
                    check_ported_stage(stage_dir)
                except BuildError as err:
                    sys.exit(f"setup_musa.py: {err}")
            super().build_extensions()

    return SamplingPortingBuildExtension


def _curand_include_dirs() -> list[str]:
    """cuRAND headers: the CUDA toolkit's, else the nvidia-curand wheel that CUDA torch installs."""
    cuda_home = os.environ.get("CUDA_HOME", "")
    if cuda_home and (Path(cuda_home) / "include" / "curand_kernel.h").is_file():
        return []
    spec = importlib.util.find_spec("nvidia")
    roots = (
        list(spec.submodule_search_locations) if spec and spec.submodule_search_locations else []
    )
    for root in roots:
        for header in sorted(Path(root).glob("**/include/curand_kernel.h")):
            return [str(header.parent)]
    raise BuildError(
        "cuRAND headers (curand_kernel.h) not found in CUDA_HOME/include or the nvidia-curand "
        "wheel; pip install nvidia-curand (CUDA torch installs it)"
    )


def cuda_extension_kwargs(flashinfer_include: Path) -> dict:
    return {
        "name": EXTENSION_NAME,
        "sources": list(SOURCES),
        "include_dirs": [str(KERNEL_DIR / "include"), str(flashinfer_include)]
        + _curand_include_dirs(),
        "extra_compile_args": {"cxx": list(CXX_FLAGS), "nvcc": list(NVCC_FLAGS)},
    }


def _prepare_cuda_env() -> None:
    # Must run before torch.utils.cpp_extension is imported: it reads both at import.
    if "CUDA_HOME" not in os.environ and Path("/usr/local/cuda/bin/nvcc").exists():
        # torch otherwise guesses /usr/local from an nvcc wrapper in /usr/local/bin.
        os.environ["CUDA_HOME"] = "/usr/local/cuda"
    if "TORCH_CUDA_ARCH_LIST" not in os.environ:
        import torch

        if not torch.cuda.is_available():
            os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_CUDA_ARCH_LIST


def _musa_extension_and_cmdclass(env: dict, flashinfer_include: Path):
    from importlib.metadata import PackageNotFoundError, version

    try:
        warning = check_torchada_version(version("torchada"), env)
    except PackageNotFoundError as err:
        raise BuildError(
            f"torchada is required on MUSA: pip install torchada=={TORCHADA_CHECKED}"
        ) from err
    if warning:
        print(warning, file=sys.stderr)
    import torchada  # noqa: F401  (must precede torch.utils.cpp_extension)
    from torch.utils.cpp_extension import BuildExtension, CUDAExtension

    arch, why = musa_arch_choice(env, visible_musa_arch())
    print(arch_log_line(arch, why))
    os.environ["TORCH_MUSA_ARCH_LIST"] = torch_musa_arch_list(arch, env)
    stage_dir = stage_musa_sources(flashinfer_include, musa_stage_dir(env))
    warning = check_torch_musa_mapping(stage_dir, env)
    if warning:
        print(warning, file=sys.stderr)
    build_ext = with_port_rules(BuildExtension, stage_dir).with_options(use_ninja=True)
    return CUDAExtension(**musa_extension_kwargs(arch, stage_dir)), {"build_ext": build_ext}


def extension_and_cmdclass(env: dict | None = None):
    env = os.environ if env is None else env
    flashinfer_include = stage_flashinfer(env)
    if is_musa_host():
        return _musa_extension_and_cmdclass(env, flashinfer_include)
    _prepare_cuda_env()
    from torch.utils.cpp_extension import BuildExtension, CUDAExtension

    kwargs = cuda_extension_kwargs(flashinfer_include)
    return CUDAExtension(**kwargs), {"build_ext": BuildExtension.with_options(use_ninja=True)}


def main() -> None:
    from setuptools import find_packages, setup

    os.chdir(KERNEL_DIR)  # sources are relative to this directory
    try:
        extension, cmdclass = extension_and_cmdclass()
    except BuildError as err:
        sys.exit(f"setup_musa.py: {err}")
    setup(
        packages=find_packages(where="python"),
        package_dir={"": "python"},
        ext_modules=[extension],
        cmdclass=cmdclass,
    )


if __name__ == "__main__":
    main()
