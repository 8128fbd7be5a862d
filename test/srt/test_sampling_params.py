"""SamplingParams: every value the batch tensors cannot carry is rejected per request with
a message naming field, value and range; every value it accepts builds a batch and
samples, next to ordinary requests, on both backends."""

import dataclasses

import numpy as np
import pytest
import torch

from sglang.srt.layers.logits_processor import LogitsProcessorOutput
from sglang.srt.layers.sampler import Sampler
from sglang.srt.sampling.sampling_batch_info import SamplingBatchInfo
from sglang.srt.sampling.sampling_params import TOP_K_ALL, SamplingParams, as_float32

FLOAT32_MAX = torch.finfo(torch.float32).max
TEMPERATURE = r"temperature must be a finite number >= 0 that float32 holds \(up to about 3.4e38\)"
TOP_P = r"top_p must be in \(0, 1\], and not so small that float32 rounds it to 0"
MIN_P = r"min_p must be in \[0, 1\]"
TOP_K = r"top_k must be an integer in \[1, 2147483647\] \(int32\), or -1 for all tokens"
SEED = r"sampling_seed must be None or an integer in \[0, 9223372036854775807\] \(int64\)"

REJECTED = [
    ("temperature=-0.1", {"temperature": -0.1}, TEMPERATURE + ", got -0.1"),
    ("temperature=inf", {"temperature": float("inf")}, TEMPERATURE + ", got inf"),
    ("temperature=nan", {"temperature": float("nan")}, TEMPERATURE + ", got nan"),
    ("temperature=1e39 (inf in float32)", {"temperature": 1e39}, TEMPERATURE + ", got 1e\\+39"),
    ("temperature=3.5e38 (inf in float32)", {"temperature": 3.5e38}, TEMPERATURE),
    ("temperature=10**40 (an int)", {"temperature": 10**40}, TEMPERATURE),
    ("temperature=10**400 (beyond float64)", {"temperature": 10**400}, TEMPERATURE),
    ("temperature='1' (a string)", {"temperature": "1"}, TEMPERATURE + ", got '1'"),
    ("temperature=True (a bool)", {"temperature": True}, TEMPERATURE + ", got True"),
    ("top_p=0", {"top_p": 0.0}, TOP_P + ", got 0.0"),
    ("top_p=1.01", {"top_p": 1.01}, TOP_P + ", got 1.01"),
    ("top_p=nan", {"top_p": float("nan")}, TOP_P + ", got nan"),
    ("top_p=-inf", {"top_p": float("-inf")}, TOP_P + ", got -inf"),
    ("top_p=1e-46 (0 in float32)", {"top_p": 1e-46}, TOP_P + ", got 1e-46"),
    ("min_p=-0.01", {"min_p": -0.01}, MIN_P + ", got -0.01"),
    ("min_p=1.5", {"min_p": 1.5}, MIN_P + ", got 1.5"),
    ("min_p=nan", {"min_p": float("nan")}, MIN_P + ", got nan"),
    ("min_p=inf", {"min_p": float("inf")}, MIN_P + ", got inf"),
    ("top_k=0", {"top_k": 0}, TOP_K + ", got 0"),
    ("top_k=-2", {"top_k": -2}, TOP_K + ", got -2"),
    ("top_k=2.5", {"top_k": 2.5}, TOP_K + ", got 2.5"),
    ("top_k=5.0 (a float)", {"top_k": 5.0}, TOP_K + ", got 5.0"),
    ("top_k=2**31 (beyond int32)", {"top_k": 2**31}, TOP_K + ", got 2147483648"),
    ("top_k=2**63", {"top_k": 2**63}, TOP_K),
    ("top_k=True (a bool)", {"top_k": True}, TOP_K + ", got True"),
    ("sampling_seed='7'", {"sampling_seed": "7"}, SEED + ", got '7'"),
    ("sampling_seed=-1", {"sampling_seed": -1}, SEED + ", got -1"),
    ("sampling_seed=2**63 (beyond int64)", {"sampling_seed": 2**63}, SEED),
    ("sampling_seed=1.5", {"sampling_seed": 1.5}, SEED + ", got 1.5"),
    ("sampling_seed=True (a bool)", {"sampling_seed": True}, SEED + ", got True"),
]


@pytest.mark.parametrize(
    "kwargs, message", [pytest.param(kw, msg, id=case) for case, kw, msg in REJECTED]
)
def test_invalid_values_name_field_value_and_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


def test_float32_rounding_helper():
    assert as_float32(0.1) == float(np.float32(0.1))
    assert as_float32(3.4028235e38) == FLOAT32_MAX  # rounds down to the largest float32
    assert as_float32(3.5e38) == float("inf") and as_float32(-1e39) == float("-inf")
    assert as_float32(10**400) == float("inf")
    assert as_float32(1e-46) == 0.0 and as_float32(1e-45) > 0


@pytest.mark.parametrize(
    "kwargs, field, stored",
    [
        pytest.param({"temperature": 1e-7}, "top_k", 1, id="temperature<1e-6 is greedy: top_k=1"),
        pytest.param({"temperature": 1e-7}, "temperature", 1.0, id="greedy stores temperature=1"),
        pytest.param({"temperature": 0}, "top_k", 1, id="temperature=0 is greedy"),
        pytest.param({"top_k": -1}, "top_k", TOP_K_ALL, id="top_k=-1 is stored as TOP_K_ALL"),
        pytest.param({"top_k": TOP_K_ALL}, "top_k", TOP_K_ALL, id="top_k=TOP_K_ALL kept"),
        pytest.param({"top_k": TOP_K_ALL + 1}, "top_k", TOP_K_ALL, id="top_k>TOP_K_ALL clamped"),
        pytest.param({"top_k": 2**31 - 1}, "top_k", TOP_K_ALL, id="top_k=int32 max clamped"),
        pytest.param({"top_k": TOP_K_ALL - 1}, "top_k", TOP_K_ALL - 1, id="top_k<TOP_K_ALL kept"),
        pytest.param({"sampling_seed": 2**63 - 1}, "sampling_seed", 2**63 - 1, id="seed=int64 max"),
        pytest.param({"sampling_seed": 0}, "sampling_seed", 0, id="seed=0"),
        pytest.param(
            {"temperature": 3.4028235e38}, "temperature", 3.4028235e38, id="T=float32 max"
        ),
        pytest.param({"top_p": 1e-45}, "top_p", 1e-45, id="top_p=smallest float32 denormal"),
        pytest.param({"min_p": 1e-50}, "min_p", 1e-50, id="min_p=1e-50 (0 in float32)"),
    ],
)
def test_accepted_values_are_normalised(kwargs, field, stored):
    assert getattr(SamplingParams(**kwargs), field) == stored


def test_numpy_scalars_are_accepted_and_stored_as_python_numbers():
    p = SamplingParams(
        temperature=np.float32(0.5),
        top_p=np.float64(0.9),
        top_k=np.int64(7),
        sampling_seed=np.int32(3),
    )
    assert (p.temperature, p.top_p, p.top_k, p.sampling_seed) == (0.5, 0.9, 7, 3)
    assert all(type(v) in (int, float) for v in dataclasses.astuple(p))


def test_a_checked_request_cannot_be_changed_into_an_invalid_one():
    p = SamplingParams(top_k=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.top_k = 2**40
    with pytest.raises(ValueError, match=TOP_K):
        dataclasses.replace(p, top_k=2**31)  # replace() builds and checks a new request
    assert dataclasses.replace(p, top_k=9).top_k == 9


def test_only_sampling_params_build_a_batch():
    with pytest.raises(TypeError, match=r"params\[1\] must be a SamplingParams, got dict"):
        SamplingBatchInfo.from_sampling_params([SamplingParams(), {"top_k": 2**40}], "cpu")
    with pytest.raises(ValueError, match="at least one request"):
        SamplingBatchInfo.from_sampling_params([], "cpu")


# The most extreme request of each field that verify() accepts.
EXTREMES = {
    "temperature=float32 max": SamplingParams(temperature=3.4028235e38),
    "temperature=1e-6 (smallest sampled)": SamplingParams(temperature=1e-6),
    "top_p=smallest float32": SamplingParams(top_p=1e-45),
    "top_k=int32 max": SamplingParams(top_k=2**31 - 1),
    "top_k=1": SamplingParams(top_k=1),
    "min_p=1": SamplingParams(min_p=1.0),
    "min_p=1e-50": SamplingParams(min_p=1e-50, top_k=20),
}


@pytest.mark.parametrize("seeded", [False, True], ids=["unseeded", "with seed=int64 max"])
def test_extreme_accepted_values_build_and_sample_next_to_ordinary_requests(
    backend, seeded, device
):
    ordinary = SamplingParams(temperature=0.8, top_k=5)
    batch = [ordinary] + list(EXTREMES.values()) + [ordinary]
    if seeded:
        batch.append(SamplingParams(sampling_seed=2**63 - 1))
    info = SamplingBatchInfo.from_sampling_params(batch, device)
    assert info.temperatures.isfinite().all() and (info.top_ps > 0).all()
    assert info.top_ks.dtype == torch.int32 and int(info.top_ks[4]) == TOP_K_ALL
    if seeded:
        assert info.sampling_seed.dtype == torch.int64 and int(info.sampling_seed[-1]) == 2**63 - 1

    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(len(batch), 64, generator=g) * 3).to(device)
    positions = torch.arange(len(batch), device=device)
    ids = Sampler(backend)(
        LogitsProcessorOutput(logits), info, False, None, None, positions=positions
    )
    top = logits.argmax(dim=-1)
    top5 = logits.topk(5, dim=-1).indices
    assert ids.shape == (len(batch),) and bool(((ids >= 0) & (ids < 64)).all())
    for row in (0, len(EXTREMES) + 1):  # the ordinary requests keep their own filter
        assert int(ids[row]) in top5[row].tolist()
    names = list(EXTREMES)
    for name in ("top_p=smallest float32", "top_k=1", "min_p=1"):  # only the top token
        row = 1 + names.index(name)
        assert ids[row] == top[row], name


@pytest.mark.parametrize(
    "batch, flags",
    [
        pytest.param(
            [SamplingParams(top_k=5), SamplingParams(min_p=0.2)],
            (True, False, True, False, False),
            id="top_k + min_p",
        ),
        pytest.param(
            [SamplingParams(top_p=0.9), SamplingParams(temperature=0)],
            (True, True, False, False, True),
            id="top_p + greedy",
        ),
        pytest.param(
            [SamplingParams(temperature=0)] * 2, (True, False, False, True, True), id="all greedy"
        ),
        pytest.param(
            [SamplingParams(top_k=2**31 - 1)],
            (False, False, False, False, False),
            id="top_k=int32 max needs no top-k",
        ),
    ],
)
def test_batch_flags(batch, flags):
    info = SamplingBatchInfo.from_sampling_params(batch, "cpu")
    got = (
        info.need_top_k_sampling,
        info.need_top_p_sampling,
        info.need_min_p_sampling,
        info.is_all_greedy,
        info.has_greedy,
    )
    assert got == flags
    assert info.temperatures.shape == (len(batch), 1) and info.top_ks.dtype == torch.int32
