"""Platform checks and environment helpers used by the sampling layer."""

from sglang.srt.utils.common import (
    crash_on_warnings,
    get_bool_env_var,
    is_cpu,
    is_cuda,
    is_cuda_alike,
    is_musa,
)

__all__ = ["crash_on_warnings", "get_bool_env_var", "is_cpu", "is_cuda", "is_cuda_alike", "is_musa"]
