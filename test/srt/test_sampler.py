"""SGLang's Sampler on both backends: distributions, greedy, temperature, logprobs,
seeds, NaN handling, invalid parameters, and the MUSA import branch.

The "flashinfer" backend runs the sgl_kernel ops: on the CPU their torch-native
reference, on a GPU the FlashInfer kernels. Distributions are checked with a
chi-square test at a false-alarm rate of 1e-4 per case (sgl_kernel.testing.ALPHA).
"""

import importlib
import logging
import sys
import types

import pytest
import torch

import sglang.srt.layers.sampler as sampler_module
from sgl_kernel.testing import assert_matches_distribution, is_gpu
from sglang.test.sampler_testing import exact_distribution as expected_distribution
from sglang.srt.layers.logits_processor import LogitsProcessorOutput
from sglang.srt.layers.sampler import Sampler, resolve_sampling_backend
from sglang.srt.sampling.sampling_batch_info import SamplingBatchInfo
from sglang.srt.sampling.sampling_params import TOP_K_ALL, SamplingParams

try:
    import sgl_kernel
except ImportError as err:  # the pytorch backend is still tested
    sgl_kernel, SGL_KERNEL_MISSING = None, str(err)
else:
    SGL_KERNEL_MISSING = None

needs_kernels = pytest.mark.skipif(
    sgl_kernel is None, reason=f"sgl_kernel is not built: {SGL_KERNEL_MISSING}"
)
BACKENDS = [pytest.param("pytorch"), pytest.param("flashinfer", marks=needs_kernels)]

VOCAB = 40


def make_logits(vocab=VOCAB, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(vocab, generator=g) * 2  # distinct values: no ties


def run(backend, device, logits_row, params, n, positions=None, **forward_kw):
    """Sample n requests with the same logits row and parameters in one forward."""
    logits = logits_row.to(device).repeat(n, 1)
    info = SamplingBatchInfo.from_sampling_params([params] * n, device)
    out = LogitsProcessorOutput(next_token_logits=logits)
    ids = Sampler(backend)(
        out,
        info,
        forward_kw.pop("return_logprob", False),
        [0] * n,
        [None] * n,
        positions=positions,
        **forward_kw,
    )
    return ids, out


PATHS = {
    "plain": SamplingParams(temperature=1.0),
    "hot": SamplingParams(temperature=2.0),
    "cold": SamplingParams(temperature=0.5),
    "top_k": SamplingParams(top_k=7),
    "top_p": SamplingParams(top_p=0.6),
    "min_p": SamplingParams(min_p=0.1),
    "top_k_top_p": SamplingParams(temperature=0.8, top_k=10, top_p=0.7),
    "all_three": SamplingParams(temperature=1.3, top_k=12, top_p=0.8, min_p=0.05),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path", sorted(PATHS))
def test_token_frequencies_match_the_filtered_distribution(backend, path, device):
    n = 200_000 if is_gpu(device) else 20_000
    logits = make_logits(seed=len(path))
    torch.manual_seed(1234)
    ids, _ = run(backend, device, logits, PATHS[path], n)
    assert ids.dtype == torch.int32 and ids.shape == (n,)
    assert_matches_distribution(
        ids, expected_distribution(logits, PATHS[path], backend), f"{backend}/{path}"
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_greedy_batches_and_greedy_rows_take_the_argmax(backend, device):
    g = torch.Generator().manual_seed(3)
    logits = (torch.randn(64, 500, generator=g) * 3).to(device)
    greedy = SamplingParams(temperature=0.0)
    params = [
        greedy if i % 3 == 0 else SamplingParams(temperature=1.5, top_p=0.9) for i in range(64)
    ]
    for batch in ([greedy] * 64, params):
        info = SamplingBatchInfo.from_sampling_params(batch, device)
        ids = Sampler(backend)(
            LogitsProcessorOutput(logits.clone()), info, False, [0] * 64, [None] * 64
        )
        rows = [i for i, p in enumerate(batch) if p.is_greedy]
        assert ids[rows].tolist() == logits.argmax(-1)[rows].tolist()
    assert SamplingBatchInfo.from_sampling_params([greedy] * 2, device).is_all_greedy


@pytest.mark.parametrize("backend", BACKENDS)
def test_logprobs_are_the_temperature_scaled_log_softmax(backend, device):
    g = torch.Generator().manual_seed(4)
    logits = (torch.randn(6, 300, generator=g) * 2).to(device)
    params = [
        SamplingParams(temperature=t, top_k=k)
        for t, k in [(0.7, 20), (1.0, -1), (0.0, -1), (2.0, 5), (1.0, 50), (0.3, -1)]
    ]
    info = SamplingBatchInfo.from_sampling_params(params, device)
    out = LogitsProcessorOutput(logits.clone())
    top_nums = [0, 3, 5, 1, 0, 2]
    wanted = [None, [7, 9], None, [0], [299, 1, 2], None]
    ids = Sampler(backend)(out, info, True, top_nums, wanted)
    expect = torch.log_softmax(logits / info.temperatures, dim=-1)
    torch.testing.assert_close(
        out.next_token_logprobs, expect[torch.arange(6, device=device), ids.long()]
    )
    for row, n in enumerate(top_nums):
        vals, idx = expect[row].topk(n) if n else (torch.empty(0), torch.empty(0, dtype=torch.long))
        assert out.next_token_top_logprobs_idx[row] == idx.tolist()
        torch.testing.assert_close(
            torch.tensor(out.next_token_top_logprobs_val[row]), vals.cpu(), check_dtype=False
        )
    for row, ids_wanted in enumerate(wanted):
        if ids_wanted is None:
            assert out.next_token_token_ids_logprobs_val[row] is None
        else:
            assert out.next_token_token_ids_logprobs_idx[row] == ids_wanted
            torch.testing.assert_close(
                torch.tensor(out.next_token_token_ids_logprobs_val[row]),
                expect[row, ids_wanted].cpu(),
            )


def test_all_greedy_logprobs_are_the_log_softmax(device):
    logits = torch.randn(3, 50).to(device)
    info = SamplingBatchInfo.from_sampling_params([SamplingParams(temperature=0)] * 3, device)
    out = LogitsProcessorOutput(logits.clone())
    ids = Sampler("pytorch")(out, info, True, [2, 0, 1], [None] * 3)
    expect = torch.log_softmax(logits, -1)
    torch.testing.assert_close(
        out.next_token_logprobs, expect.gather(1, ids.long().view(-1, 1)).view(-1)
    )


# --------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_and_position_give_the_same_token_on_every_backend(backend, device):
    logits = make_logits(seed=9)
    params = SamplingParams(temperature=1.0, top_p=0.95, top_k=30, sampling_seed=42)
    pos = torch.arange(100, device=device)
    first, _ = run(backend, device, logits, params, 100, positions=pos)
    again, _ = run(backend, device, logits, params, 100, positions=pos)
    other_backend = (
        "pytorch" if backend == "flashinfer" else ("flashinfer" if sgl_kernel else "pytorch")
    )
    across, _ = run(other_backend, device, logits, params, 100, positions=pos)
    assert torch.equal(first, again) and torch.equal(first, across)
    assert len(set(first.tolist())) > 1, "different positions must give different draws"
    shifted, _ = run(backend, device, logits, params, 100, positions=pos + 1)
    assert torch.equal(shifted[:-1], first[1:])  # a token depends on (seed, position) only


def test_seeded_draws_follow_the_filtered_distribution(device):
    logits = make_logits(seed=10)
    params = SamplingParams(temperature=0.9, top_k=15, top_p=0.85)
    n = 20_000
    info = SamplingBatchInfo.from_sampling_params([params] * n, device)
    info.sampling_seed = torch.arange(n, dtype=torch.int64, device=device) * 7919 + 13
    out = LogitsProcessorOutput(logits.to(device).repeat(n, 1))
    ids = Sampler("pytorch")(
        out, info, False, [0] * n, [None] * n, positions=torch.full((n,), 5, device=device)
    )
    assert_matches_distribution(ids, expected_distribution(logits, params, "pytorch"), "seeded")


def test_unseeded_requests_in_a_seeded_batch_stay_random(device):
    logits = make_logits(seed=11)
    batch = [SamplingParams(sampling_seed=1)] + [SamplingParams()] * 200
    draws = []
    for _ in range(2):
        info = SamplingBatchInfo.from_sampling_params(batch, device)
        out = LogitsProcessorOutput(logits.to(device).repeat(len(batch), 1))
        draws.append(
            Sampler("pytorch")(
                out, info, False, [0] * 201, [None] * 201, positions=torch.zeros(201, device=device)
            )
        )
    assert draws[0][0] == draws[1][0]
    assert not torch.equal(draws[0][1:], draws[1][1:])


def test_seeds_without_positions_are_a_clear_error():
    with pytest.raises(ValueError, match="needs positions when a request sets sampling_seed"):
        run("pytorch", "cpu", make_logits(), SamplingParams(sampling_seed=3), 4)


# --------------------------------------------------------------------------- NaN


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_logits_without_detection_give_token_zero_not_a_crash(backend, device, monkeypatch):
    monkeypatch.delenv("SGLANG_ENABLE_NAN_DETECTION", raising=False)
    logits = torch.randn(4, 30)
    logits[2] = float("nan")
    info = SamplingBatchInfo.from_sampling_params([SamplingParams(top_p=0.9)] * 4, device)
    ids = Sampler(backend)(
        LogitsProcessorOutput(logits.to(device)), info, False, [0] * 4, [None] * 4
    )
    assert ids[2] == 0 and bool((ids >= 0).all()) and bool((ids < 30).all())


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_detection_replaces_nan_and_warns(backend, device, monkeypatch, caplog):
    monkeypatch.setenv("SGLANG_ENABLE_NAN_DETECTION", "1")
    monkeypatch.setenv("SGLANG_IS_IN_CI", "0")
    logits = torch.zeros(2, 30)
    logits[0, 5] = 50.0
    logits[0, 7] = float("nan")
    info = SamplingBatchInfo.from_sampling_params([SamplingParams(top_k=3)] * 2, device)
    with caplog.at_level(logging.WARNING):
        ids = Sampler(backend)(
            LogitsProcessorOutput(logits.to(device)), info, False, [0] * 2, [None] * 2
        )
    assert ids[0] == 5  # the NaN became -1e5, so token 5 dominates
    assert "NaN in the logits" in caplog.text


def test_nan_detection_raises_in_ci(device, monkeypatch):
    monkeypatch.setenv("SGLANG_ENABLE_NAN_DETECTION", "true")
    monkeypatch.setenv("SGLANG_IS_IN_CI", "true")
    logits = torch.randn(2, 10)
    logits[1, 1] = float("nan")
    info = SamplingBatchInfo.from_sampling_params([SamplingParams()] * 2, device)
    with pytest.raises(ValueError, match="NaN in the logits"):
        Sampler("pytorch")(
            LogitsProcessorOutput(logits.to(device)), info, False, [0] * 2, [None] * 2
        )


def test_a_malformed_boolean_environment_variable_is_named(monkeypatch):
    monkeypatch.setenv("SGLANG_ENABLE_NAN_DETECTION", "maybe")
    with pytest.raises(ValueError, match="SGLANG_ENABLE_NAN_DETECTION='maybe' is not a boolean"):
        Sampler("pytorch")


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": -0.1}, r"temperature must be a number >= 0, got -0.1"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\], got 0.0"),
        ({"top_p": 1.01}, r"top_p must be in \(0, 1\], got 1.01"),
        ({"top_k": 0}, r"top_k must be an integer >= 1, or -1 for all tokens, got 0"),
        ({"top_k": -2}, r"top_k must be an integer >= 1, or -1 for all tokens, got -2"),
        ({"top_k": 2.5}, r"top_k must be an integer >= 1, or -1 for all tokens, got 2.5"),
        ({"min_p": 1.5}, r"min_p must be in \[0, 1\], got 1.5"),
        ({"min_p": -0.01}, r"min_p must be in \[0, 1\], got -0.01"),
        ({"sampling_seed": "7"}, r"sampling_seed must be an integer or None, got '7'"),
    ],
)
def test_invalid_sampling_params_name_field_value_and_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


def test_sampling_params_normalisation():
    assert (
        SamplingParams(temperature=1e-7).temperature,
        SamplingParams(temperature=1e-7).top_k,
    ) == (1.0, 1)
    assert SamplingParams(top_k=-1).top_k == TOP_K_ALL
    info = SamplingBatchInfo.from_sampling_params(
        [SamplingParams(top_k=5), SamplingParams(min_p=0.2)], "cpu"
    )
    assert (info.need_top_k_sampling, info.need_top_p_sampling, info.need_min_p_sampling) == (
        True,
        False,
        True,
    )
    assert info.temperatures.shape == (2, 1) and info.top_ks.dtype == torch.int32
    with pytest.raises(ValueError, match="at least one request"):
        SamplingBatchInfo.from_sampling_params([], "cpu")


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(
        ValueError,
        match=r"sampling backend must be one of \('flashinfer', 'pytorch'\), got 'triton'",
    ):
        Sampler("triton")


def test_backend_defaults(monkeypatch):
    monkeypatch.delenv("SGLANG_SAMPLING_BACKEND", raising=False)
    assert resolve_sampling_backend(None, torch.device("cpu")) == "pytorch"
    gpu = types.SimpleNamespace(type="musa")
    expected = "flashinfer" if sampler_module.KERNELS_UNAVAILABLE_REASON is None else "pytorch"
    assert resolve_sampling_backend(None, gpu) == expected
    monkeypatch.setenv("SGLANG_SAMPLING_BACKEND", "pytorch")
    assert resolve_sampling_backend(None, gpu) == "pytorch"


def test_flashinfer_without_kernels_says_why(monkeypatch):
    monkeypatch.setattr(sampler_module, "KERNELS_UNAVAILABLE_REASON", "sgl_kernel is not built")
    with pytest.raises(RuntimeError, match="'flashinfer' cannot run: sgl_kernel is not built"):
        Sampler("flashinfer")
    assert resolve_sampling_backend(None, types.SimpleNamespace(type="cuda")) == "pytorch"


# --------------------------------------------------------------------------- MUSA branch


@needs_kernels
def test_musa_branch_imports_and_calls_the_sgl_kernel_ops(monkeypatch):
    """With torch_musa's marker set, the sampler must take its kernels from sgl_kernel."""
    from sglang.srt.utils import common

    monkeypatch.setattr(torch.version, "musa", "4.3.0", raising=False)
    fake_torchada = types.ModuleType("torchada")
    monkeypatch.setitem(sys.modules, "torchada", fake_torchada)
    monkeypatch.setitem(sys.modules, "flashinfer", None)  # importing FlashInfer would fail
    common.is_musa.cache_clear()
    common.is_cuda.cache_clear()
    try:
        assert common.is_musa() and not common.is_cuda()
        musa_sampler = importlib.reload(sampler_module)
        for name in (
            "min_p_sampling_from_probs",
            "top_k_renorm_prob",
            "top_p_renorm_prob",
            "top_k_top_p_sampling_from_probs",
            "sampling_from_probs",
        ):
            assert getattr(musa_sampler, name) is getattr(sgl_kernel, name), name
        assert (
            musa_sampler.resolve_sampling_backend(None, types.SimpleNamespace(type="musa"))
            == "flashinfer"
        )

        called = []
        for name in (
            "top_k_top_p_sampling_from_probs",
            "min_p_sampling_from_probs",
            "top_k_renorm_prob",
        ):
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
        for params, op in [
            (SamplingParams(top_k=5, top_p=0.9), "top_k_top_p_sampling_from_probs"),
            (SamplingParams(top_k=5, min_p=0.1), "min_p_sampling_from_probs"),
        ]:
            info = SamplingBatchInfo.from_sampling_params([params] * 4, "cpu")
            ids = musa_sampler.Sampler("flashinfer")(
                LogitsProcessorOutput(logits.clone()), info, False, [0] * 4, [None] * 4
            )
            assert ids.shape == (4,) and op in called
        assert "top_k_renorm_prob" in called
    finally:
        monkeypatch.undo()
        common.is_musa.cache_clear()
        common.is_cuda.cache_clear()
        importlib.reload(sampler_module)
