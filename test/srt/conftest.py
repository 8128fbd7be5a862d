"""Sampler tests run on the CPU and, with a GPU, on the GPU (sgl_kernel.testing.DEVICES)."""

import pytest

from sgl_kernel.testing import DEVICES


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param
