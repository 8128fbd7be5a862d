"""Shared fixtures: every test runs on the CPU (the reference kernels) and, when a GPU
is visible, on the GPU build of the same ops. GPU runs use the full sizes of the
acceptance criteria; CPU runs use sizes that keep CI within its time budget."""

import pytest
import torch


def _gpu_device():
    if torch.cuda.is_available():
        return "cuda"
    musa = getattr(torch, "musa", None)
    if musa is not None and musa.is_available():
        return "musa"
    return None


GPU = _gpu_device()
DEVICES = ["cpu"] + ([GPU] if GPU else [])


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


def is_gpu(device: str) -> bool:
    return device != "cpu"
