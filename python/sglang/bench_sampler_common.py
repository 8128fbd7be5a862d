"""Small helpers shared by the main job's two variants (model and synthetic logits)."""

from __future__ import annotations

from typing import List

import torch

from sglang.srt.layers.sampler import KERNELS_UNAVAILABLE_REASON


def available_backends(device: torch.device) -> List[str]:
    """Sampler backends that can run on `device`: "pytorch" always; "flashinfer" when
    sgl_kernel's ops import (the kernels on a GPU, their torch-native reference on CPU)."""
    backends = ["pytorch"]
    if KERNELS_UNAVAILABLE_REASON is None:
        backends.append("flashinfer")
    return backends


def gpu_device() -> torch.device | None:
    if torch.cuda.is_available():
        return torch.device("cuda")
    musa = getattr(torch, "musa", None)
    if musa is not None and musa.is_available():
        return torch.device("musa")
    return None


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so host timers measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "musa":
        torch.musa.synchronize(device)
