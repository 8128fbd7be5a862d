import functools
import importlib.util
import os

import torch

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


def get_bool_env_var(name: str, default: str = "false") -> bool:
    """An environment flag; anything but a true/false spelling is an error naming it."""
    value = os.getenv(name, default).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"environment variable {name}={value!r} is not a boolean (use 1/0, true/false)"
    )


def crash_on_warnings() -> bool:
    """In CI, conditions that only warn in production raise instead."""
    return get_bool_env_var("SGLANG_IS_IN_CI")


@functools.lru_cache(maxsize=1)
def is_musa() -> bool:
    """True on Moore Threads hosts: torch_musa is imported (it sets torch.version.musa) or
    installed. A pure check: it imports nothing, so the answer does not depend on whether
    torch_musa was imported before this module, and asking it changes nothing.

    The sampling layer needs no torchada at run time: it calls only device-generic torch
    APIs, and sgl_kernel imports torch_musa itself. torchada is imported only where
    CUDA-named APIs must be redirected to MUSA, explicitly at that place: the MUSA build
    (sgl-kernel/setup_musa.py, before torch.utils.cpp_extension). Importing it is not a
    no-op (it sets environment variables and patches torch), so a query must not do it.
    """
    if getattr(torch.version, "musa", None) is not None:
        return True
    try:
        return importlib.util.find_spec("torch_musa") is not None
    except ValueError:  # in sys.modules without a spec (a stand-in): it is there
        return True


@functools.lru_cache(maxsize=1)
def is_cuda() -> bool:
    """True with an NVIDIA GPU and a CUDA build of torch (false on MUSA, ROCm and CPU)."""
    return torch.version.cuda is not None and torch.cuda.is_available() and not is_musa()


def is_cuda_alike() -> bool:
    return is_cuda() or is_musa()


def is_cpu() -> bool:
    return not is_cuda_alike()
