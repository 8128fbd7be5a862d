"""is_musa() is a pure check, and on MUSA the sampler takes its kernels from sgl_kernel.

These run on any host: torch_musa's marker (torch.version.musa) or its presence on the
import path is simulated, and torchada is made unimportable so that any attempt to
import it fails the test.
"""

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

import pytest
import torch

import sgl_kernel
import sglang.srt.layers.sampler as sampler_module
from sglang.srt.layers.logits_processor import LogitsProcessorOutput
from sglang.srt.sampling.sampling_batch_info import SamplingBatchInfo
from sglang.srt.sampling.sampling_params import SamplingParams
from sglang.srt.utils import common


class _NeverLoaded(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise AssertionError(f"{module.__name__} must not be imported by is_musa()")


class _FindsTorchMusa(importlib.abc.MetaPathFinder):
    """Makes torch_musa look installed; importing it fails the test."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch_musa":
            return importlib.machinery.ModuleSpec(name, _NeverLoaded())
        return None


@pytest.fixture
def clean_platform(monkeypatch):
    """No MUSA marker, torchada unimportable, and fresh is_musa()/is_cuda() caches."""
    monkeypatch.delattr(torch.version, "musa", raising=False)
    monkeypatch.setitem(sys.modules, "torchada", None)  # `import torchada` raises
    common.is_musa.cache_clear()
    common.is_cuda.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    common.is_musa.cache_clear()
    common.is_cuda.cache_clear()


def test_is_musa_is_false_without_torch_musa(clean_platform):
    clean_platform.setitem(sys.modules, "torch_musa", None)  # not importable
    assert not common.is_musa()


def test_is_musa_reads_the_marker_without_importing_anything(clean_platform):
    clean_platform.setattr(torch.version, "musa", "4.3.0", raising=False)
    before = set(sys.modules)
    assert common.is_musa()
    assert set(sys.modules) == before
    assert not common.is_cuda()


def test_is_musa_finds_an_installed_torch_musa_without_importing_it(clean_platform):
    clean_platform.delitem(sys.modules, "torch_musa", raising=False)
    clean_platform.setattr(sys, "meta_path", [_FindsTorchMusa()] + sys.meta_path)
    assert common.is_musa()
    assert "torch_musa" not in sys.modules


def test_musa_branch_imports_and_calls_the_sgl_kernel_ops(clean_platform):
    """With torch_musa's marker set, the sampler must take its kernels from sgl_kernel
    (and import neither torchada nor FlashInfer)."""
    monkeypatch = clean_platform
    monkeypatch.setattr(torch.version, "musa", "4.3.0", raising=False)
    monkeypatch.setitem(sys.modules, "flashinfer", None)  # importing FlashInfer would fail
    try:
        assert common.is_musa()
        musa_sampler = importlib.reload(sampler_module)
        fused = "top_k_top_p_min_p_sampling_from_logits"
        assert getattr(musa_sampler, fused) is getattr(sgl_kernel, fused)
        assert musa_sampler.seeded_exponential is sgl_kernel.sampling_reference.seeded_exponential
        musa = types.SimpleNamespace(type="musa")
        assert musa_sampler.resolve_sampling_backend(None, musa) == "flashinfer"

        called = []
        for name in (fused,):
            real = getattr(musa_sampler, name)
            monkeypatch.setattr(
                musa_sampler,
                name,
                lambda *a, _r=real, _n=name, **k: called.append(_n) or _r(*a, **k),
            )
        monkeypatch.setattr(
            musa_sampler,
            "top_k_top_p_min_p_sampling_from_probs_torch",
            lambda *a, **k: pytest.fail("the sort-based pytorch path was used"),
        )
        logits = torch.randn(4, 50)
        for params in [
            SamplingParams(top_k=5, top_p=0.9),
            SamplingParams(top_k=5, min_p=0.1),
            SamplingParams(temperature=0),
        ]:
            called.clear()
            info = SamplingBatchInfo.from_sampling_params([params] * 4, "cpu")
            ids = musa_sampler.Sampler("flashinfer")(
                LogitsProcessorOutput(logits.clone()), info, False, [0] * 4, [None] * 4
            )
            assert ids.shape == (4,) and called == [fused]
    finally:
        monkeypatch.undo()
        common.is_musa.cache_clear()
        importlib.reload(sampler_module)
