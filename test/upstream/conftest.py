"""Upstream SGLang's own Sampler as a client of this tree's sgl_kernel.

The published ``sglang`` wheel (pinned in requirements.txt, installed with its light
import-chain dependencies into the git-ignored ``.cache/upstream-sglang`` by
scripts/test.sh) must come first on ``PYTHONPATH``, ahead of this tree's own
``python/sglang``. scripts/test.sh runs this suite in a pytest process of its own:
the upstream ``sglang`` package and the one-process gloo group below never share a
process with the other suites.

How upstream is made to take its MUSA branch without torch_musa: upstream's
``is_musa()`` is true when ``torch.version.musa`` is set and ``torchada`` imports.
Its import chain is first imported as on a host with neither CUDA nor MUSA (a MUSA
host has no CUDA either; forcing MUSA there would register custom ops under a
``MUSA`` dispatch key that only torch_musa's torch knows). Then, with
``torch.version.musa`` set and a stand-in ``torchada`` module, the two modules whose
``is_musa()`` branch imports sgl_kernel (``sglang.srt.layers.sampler`` and
``sglang.kernels.ops.sampling.renorm``) are re-executed, and everything is put back:
nothing of the MUSA disguise outlives the import. The same is done for the speculative
import sites (``verify_sampling``, ``spec_utils``), and ``eagle_utils`` is re-imported
after them so that its EAGLE verify binds the name they resolved.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from sgl_kernel.testing import DEVICES

UPSTREAM_VERSION = "0.5.23"
MUSA_IMPORT_SITES = ("sglang.srt.layers.sampler", "sglang.kernels.ops.sampling.renorm")
# Speculative decoding: verify_sampling.py imports tree_speculative_sampling_target_only
# from sgl_kernel under is_musa(); spec_utils computes TREE_SPEC_KERNEL_AVAILABLE from
# is_musa(); eagle_utils binds the name from verify_sampling at its own import.
MUSA_SPECULATIVE_SITES = (
    "sglang.kernels.ops.speculative.verify_sampling",
    "sglang.srt.speculative.spec_utils",
)
SPECULATIVE_USERS = ("sglang.srt.speculative.eagle_utils",)


@contextlib.contextmanager
def _without_cuda():
    """Upstream's is_cuda() is false inside (torch.cuda.is_available() returns False)."""
    real = torch.cuda.is_available
    torch.cuda.is_available = lambda: False
    try:
        yield
    finally:
        torch.cuda.is_available = real


@contextlib.contextmanager
def _as_musa_host(common):
    """Upstream's is_musa() is true inside, and false again (cache cleared) after."""
    had_version = hasattr(torch.version, "musa")
    old_version = getattr(torch.version, "musa", None)
    old_torchada = sys.modules.get("torchada")
    torch.version.musa = "upstream-client-test"
    sys.modules["torchada"] = types.ModuleType("torchada")  # no porting side effects
    common.is_musa.cache_clear()
    try:
        yield
    finally:
        if had_version:
            torch.version.musa = old_version
        else:
            del torch.version.musa
        if old_torchada is None:
            sys.modules.pop("torchada", None)
        else:
            sys.modules["torchada"] = old_torchada
        common.is_musa.cache_clear()


def _import_upstream():
    import sglang

    if getattr(sglang, "__version__", None) != UPSTREAM_VERSION:
        raise RuntimeError(
            f"this suite needs upstream sglang=={UPSTREAM_VERSION} first on PYTHONPATH, "
            f"got {getattr(sglang, '__version__', None)!r} from {sglang.__file__}; "
            "run it through scripts/test.sh (which installs it into .cache/upstream-sglang)"
        )
    with _without_cuda():
        import sglang.srt.utils.common as common

        modules = [importlib.import_module(name) for name in MUSA_IMPORT_SITES]
        speculative = [importlib.import_module(name) for name in MUSA_SPECULATIVE_SITES]
        users = [importlib.import_module(name) for name in SPECULATIVE_USERS]
        with _as_musa_host(common):
            assert common.is_musa()
            modules = [importlib.reload(module) for module in modules]
            speculative = [importlib.reload(module) for module in speculative]
        users = [importlib.reload(module) for module in users]  # rebinds the reloaded names
    assert not common.is_musa()
    _import_upstream.speculative = SimpleNamespace(
        verify_sampling=speculative[0], spec_utils=speculative[1], eagle_utils=users[0]
    )
    return common, modules


@pytest.fixture(scope="session")
def upstream():
    """Upstream's modules, and a Sampler made by its own create_sampler()."""
    import torch.distributed as dist

    common, (sampler_module, renorm_module) = _import_upstream()

    from sglang.srt import runtime_context
    from sglang.srt.layers.logits_processor import LogitsProcessorOutput, SamplingMaskStatus
    from sglang.srt.sampling.sampling_batch_info import SamplingBatchInfo
    from sglang.srt.sampling.sampling_params import TOP_K_ALL, SamplingParams
    from sglang.srt.server_args import ServerArgs

    if not dist.is_initialized():
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    server_args = ServerArgs(
        model_path="upstream-client-test",
        sampling_backend="flashinfer",
        sampling_mask_max_tokens=4096,
    )
    runtime_context.get_context().set_server_args(server_args)
    # The Sampler only needs its tensor-parallel group's device group, EAGLE verify its
    # world size: one process.
    runtime_context.get_parallel().override_permanently(
        tp_group=SimpleNamespace(device_group=dist.group.WORLD, world_size=1)
    )
    sampler = sampler_module.create_sampler()
    yield SimpleNamespace(
        common=common,
        sampler_module=sampler_module,
        renorm_module=renorm_module,
        sampler=sampler,
        SamplingParams=SamplingParams,
        SamplingBatchInfo=SamplingBatchInfo,
        LogitsProcessorOutput=LogitsProcessorOutput,
        SamplingMaskStatus=SamplingMaskStatus,
        speculative=_import_upstream.speculative,
        TOP_K_ALL=TOP_K_ALL,
        exec_config=runtime_context.get_exec(),
    )
    dist.destroy_process_group()


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param
