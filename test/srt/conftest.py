"""Sampler tests run on the CPU and, with a GPU, on the GPU (sgl_kernel.testing.DEVICES),
and on both sampling backends: "pytorch" (sort-based) and "flashinfer" (the sgl_kernel
ops: their torch-native reference on the CPU, the FlashInfer kernels on a GPU). Both
need the built sgl_kernel extension (importing sgl_kernel.testing loads it)."""

import pytest

from sgl_kernel.testing import DEVICES


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture(params=["pytorch", "flashinfer"])
def backend(request):
    return request.param
