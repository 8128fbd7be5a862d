"""Build sgl_kernel.common_ops (the sampling ops) for MUSA or, on other hosts, CUDA.

    cd sgl-kernel && python setup_musa.py install         # MUSA: MTGPU_TARGET=mp_31|mp_22
    pip install --no-build-isolation -e sgl-kernel        # editable, either platform

One source tree, two toolchains:

* torch_musa importable -> MUSA. torchada is imported before torch.utils.cpp_extension
  (it swaps in the MUSA extension classes and rewrites CUDA spellings in the sources
  *in place*), so we compile a staged copy under build/musa_src and never touch the
  checkout. mcc flags, arch from MTGPU_TARGET.
* otherwise -> CUDA through CUDAExtension and nvcc; arch from TORCH_CUDA_ARCH_LIST
  (9.0 when it is unset and no GPU is visible).

Both compile FlashInfer 0.5.3's sampling headers, staged into 3rdparty/flashinfer with
our patches from 3rdparty/patches (see stage_flashinfer).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
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

SOURCES = ("csrc/common_extension_musa.cc", "csrc/sampling/sampling.cu")
EXTENSION_NAME = "sgl_kernel.common_ops"

# Moore Threads architectures we build for: mp_31 = MTT S5000, mp_22 = MTT S4000.
MUSA_ARCHS = {"mp_31": "MTT S5000", "mp_22": "MTT S4000"}
DEFAULT_MUSA_ARCH = "mp_31"
DEFAULT_CUDA_ARCH_LIST = "9.0"

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
# torchada renames the "nvcc" key to "mcc" but does not translate flags.
MCC_FLAGS = ["-x", "musa", "-mtgpu", "-O3", "-std=c++17", "-DUSE_MUSA"]
# "force_mcc" makes torchada compile the .cc registration file with mcc as well.
MUSA_CXX_FLAGS = ["-O3", "-std=c++17", "-DUSE_MUSA", "force_mcc"]


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


def _stamp(origin: str) -> str:
    """What the staged headers were made from: the source and every patch's hash."""
    lines = [f"origin {origin}"] + [f"patch {p.name} {_sha256(p)}" for p in _patches()]
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


def _copy_headers_from_source(source_dir: Path, dest: Path) -> None:
    candidates = [source_dir / "include" / "flashinfer", source_dir / WHEEL_HEADER_PREFIX]
    found = next((c for c in candidates if (c / "sampling.cuh").is_file()), None)
    if found is None:
        raise BuildError(
            f"FLASHINFER_SOURCE_DIR={source_dir} holds no include/flashinfer/sampling.cuh; "
            f"point it at a FlashInfer {FLASHINFER_VERSION} source tree"
        )
    for name in FLASHINFER_HEADERS:
        shutil.copyfile(found / name, dest / name)


def _apply_patches(include_root: Path) -> None:
    for patch in _patches():
        cmd = ["patch", "-p1", "--batch", "--forward", "--quiet", "-d", str(include_root)]
        try:
            result = subprocess.run(cmd + ["-i", str(patch)], capture_output=True, text=True)
        except FileNotFoundError as err:
            raise BuildError("the `patch` program is required (apt-get install patch)") from err
        if result.returncode != 0:
            raise BuildError(
                f"{patch.name} does not apply to FlashInfer {FLASHINFER_VERSION}:\n"
                f"{result.stdout}{result.stderr}"
            )


def stage_flashinfer(env: dict | None = None) -> Path:
    """Stage the pinned, patched FlashInfer headers; return the include directory.

    Source: FLASHINFER_SOURCE_DIR if set, else the sha256-checked 0.5.3 wheel (cached in
    3rdparty/.cache, downloaded with pip when absent). Staging happens in a temporary
    directory that replaces 3rdparty/flashinfer only once every patch applied, so a
    failure never leaves a half-staged tree; an up-to-date stage is reused.
    """
    env = os.environ if env is None else env
    source_dir = env.get("FLASHINFER_SOURCE_DIR")
    origin = f"source {Path(source_dir).resolve()}" if source_dir else f"wheel {FLASHINFER_SHA256}"
    stamp_file = FLASHINFER_DIR / "STAGED_FROM"
    include_dir = FLASHINFER_DIR / "include"
    if stamp_file.is_file() and stamp_file.read_text() == _stamp(origin):
        return include_dir

    THIRDPARTY_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=THIRDPARTY_DIR, prefix=".flashinfer-") as tmp:
        stage = Path(tmp) / "flashinfer"
        headers = stage / "include" / "flashinfer"
        headers.mkdir(parents=True)
        if source_dir:
            _copy_headers_from_source(Path(source_dir), headers)
        else:
            _copy_headers_from_wheel(_download_wheel(), headers)
        _apply_patches(stage)
        (stage / "STAGED_FROM").write_text(_stamp(origin))
        if FLASHINFER_DIR.exists():
            shutil.rmtree(FLASHINFER_DIR)
        stage.rename(FLASHINFER_DIR)
    return include_dir


# --------------------------------------------------------------------------- platforms


def is_musa_host() -> bool:
    return importlib.util.find_spec("torch_musa") is not None


def musa_arch(env: dict) -> str:
    arch = env.get("MTGPU_TARGET", DEFAULT_MUSA_ARCH)
    if arch not in MUSA_ARCHS:
        known = ", ".join(f"{a} ({card})" for a, card in MUSA_ARCHS.items())
        raise BuildError(f"MTGPU_TARGET={arch!r} is not supported; use one of: {known}")
    return arch


def stage_musa_sources(flashinfer_include: Path, stage_dir: Path) -> Path:
    """Copy what the MUSA build compiles into stage_dir (torchada rewrites it in place)."""
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    shutil.copytree(KERNEL_DIR / "csrc", stage_dir / "csrc")
    shutil.copytree(KERNEL_DIR / "include", stage_dir / "include")
    shutil.copytree(flashinfer_include, stage_dir / "flashinfer_include")
    return stage_dir


def musa_extension_kwargs(env: dict, stage_dir: Path) -> dict:
    """Sources, include dirs and flags of the MUSA extension, relative to nothing in the checkout."""
    arch = musa_arch(env)
    return {
        "name": EXTENSION_NAME,
        "sources": [os.path.relpath(stage_dir / s, KERNEL_DIR) for s in SOURCES],
        "include_dirs": [str(stage_dir / "include"), str(stage_dir / "flashinfer_include")],
        "extra_compile_args": {
            "cxx": list(MUSA_CXX_FLAGS),
            "nvcc": MCC_FLAGS + [f"--cuda-gpu-arch={arch}"],
        },
    }


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


def extension_and_cmdclass(env: dict | None = None):
    env = os.environ if env is None else env
    flashinfer_include = stage_flashinfer(env)
    if is_musa_host():
        import torchada  # noqa: F401  (must precede torch.utils.cpp_extension)
        from torch.utils.cpp_extension import BuildExtension, CUDAExtension

        stage_dir = stage_musa_sources(flashinfer_include, KERNEL_DIR / "build" / "musa_src")
        kwargs = musa_extension_kwargs(env, stage_dir)
    else:
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
