"""Runs every test on the CPU (reference kernels) and, with a GPU, on the GPU build.
GPU runs use the acceptance-criteria sizes; CPU runs keep CI within its time budget."""

import pytest

from sgl_kernel.testing import DEVICES


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param
