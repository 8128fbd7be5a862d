"""Sampler tests share the kernel tests' helpers (devices, chi-square check)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sgl-kernel" / "tests"))

from sampling_testing import DEVICES  # noqa: E402


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param
