import functools
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
    """True on Moore Threads GPUs: torch_musa is imported and sets torch.version.musa.

    Only then is torchada imported: it makes the CUDA-named torch APIs SGLang calls
    (torch.cuda.*, "cuda" devices) work on MUSA. On other hosts importing it would
    change environment variables, so it is never imported there.
    """
    if getattr(torch.version, "musa", None) is None:
        return False
    import torchada  # noqa: F401

    return True


@functools.lru_cache(maxsize=1)
def is_cuda() -> bool:
    """True with an NVIDIA GPU and a CUDA build of torch (false on MUSA, ROCm and CPU)."""
    return torch.version.cuda is not None and torch.cuda.is_available() and not is_musa()


def is_cuda_alike() -> bool:
    return is_cuda() or is_musa()


def is_cpu() -> bool:
    return not is_cuda_alike()
