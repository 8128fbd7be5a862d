"""Non-finite logits: always sanitised, with the documented resulting token, the same on
CPU and GPU (greedy tokens exactly, sampled tokens in distribution); with
SGLANG_ENABLE_NAN_DETECTION also reported (a warning, an error in CI).

Distributions are checked with a chi-square test at a false-alarm rate of 1e-4 per case.
"""

import logging
import re

import pytest
import torch

import sglang.srt.layers.sampler as sampler_module
from sgl_kernel.testing import assert_matches_distribution, is_gpu
from sglang.srt.layers.logits_processor import LogitsProcessorOutput
from sglang.srt.layers.sampler import Sampler
from sglang.srt.layers.sampler_inputs import FLOAT32_MAX, sanitize_logits
from sglang.srt.sampling.sampling_batch_info import SamplingBatchInfo
from sglang.srt.sampling.sampling_params import SamplingParams
from sglang.test.sampler_testing import exact_distribution

NAN, INF = float("nan"), float("inf")
VOCAB = 12


@pytest.fixture(autouse=True)
def detection_off(monkeypatch):
    monkeypatch.delenv("SGLANG_ENABLE_NAN_DETECTION", raising=False)
    monkeypatch.delenv("SGLANG_IS_IN_CI", raising=False)


def sample(backend, device, logits, params, return_logprob=False):
    info = SamplingBatchInfo.from_sampling_params(params, device)
    out = LogitsProcessorOutput(logits.to(device))
    n = logits.size(0)
    ids = Sampler(backend)(out, info, return_logprob, [0] * n, [None] * n)
    return ids, out


def base_row():
    return torch.linspace(-3.0, 2.5, VOCAB)  # distinct finite logits; token 11 is the largest


def test_sanitize_maps_each_non_finite_value_and_leaves_the_callers_logits_alone():
    x = torch.tensor([[NAN, INF, -INF, 1.5, -2.0]])
    y = sanitize_logits(x, owned=False)
    assert y.tolist() == [[-FLOAT32_MAX, FLOAT32_MAX, -FLOAT32_MAX, 1.5, -2.0]]
    assert x[0, 0].isnan() and x[0, 1] == INF  # a new tensor
    owned = x.clone()
    assert sanitize_logits(owned, owned=True) is owned and owned.isfinite().all()
    half = sanitize_logits(x.to(torch.bfloat16), owned=False)  # bf16 has no room for these
    assert half.dtype == torch.float32 and half.tolist() == y.tolist()
    wide = sanitize_logits(torch.tensor([[1e300, -1e300, 0.0]], dtype=torch.float64), owned=False)
    assert wide.dtype == torch.float32 and wide.tolist() == [[FLOAT32_MAX, -FLOAT32_MAX, 0.0]]


def greedy_rows():
    """(what, logits row, the token greedy decoding returns)."""
    cases = []
    row = base_row()
    row[4] = INF
    cases.append(("+inf is chosen", row, 4))
    row = base_row()
    row[[9, 2]] = INF
    cases.append(("first of two +inf", row, 2))
    row = base_row()
    row[[11, 0]] = NAN
    cases.append(("NaN never beats a finite logit", row, 10))
    row = base_row()
    row[11] = -INF
    cases.append(("-inf never beats a finite logit", row, 10))
    row = torch.full((VOCAB,), NAN)
    cases.append(("all NaN: token 0", row, 0))
    row = torch.full((VOCAB,), -INF)
    cases.append(("all -inf: token 0", row, 0))
    row = torch.full((VOCAB,), -INF)
    row[[1, 5]] = NAN
    cases.append(("NaN and -inf only: token 0", row, 0))
    row = base_row()
    row[[0, 7]] = NAN
    row[3] = INF
    row[5] = -INF
    cases.append(("+inf among NaN and -inf", row, 3))
    return cases


GREEDY = greedy_rows()


@pytest.mark.parametrize(
    "mixed", [False, True], ids=["all-greedy batch", "greedy rows of a mixed batch"]
)
def test_greedy_rows_take_the_documented_token(backend, device, mixed):
    logits = torch.stack([row for _, row, _ in GREEDY])
    params = [SamplingParams(temperature=0)] * len(GREEDY)
    if mixed:  # a sampled row sends the batch through softmax and the sampling ops
        logits = torch.cat([logits, base_row().view(1, -1)])
        params = params + [SamplingParams(temperature=0.7, top_p=0.9)]
    ids, out = sample(backend, device, logits, params, return_logprob=True)
    got = ids[: len(GREEDY)].tolist()
    assert got == [token for _, _, token in GREEDY], [what for what, _, _ in GREEDY]
    assert not out.next_token_logprobs.isnan().any()


def expected_with_non_finite(row, params):
    """What a row with non-finite logits samples from, by the documented rule: +inf
    tokens (else, in a row of only NaN / -inf, every token) tie for the whole mass;
    otherwise NaN and -inf tokens have probability 0."""
    if row.isposinf().any():
        tied = row.isposinf().nonzero().view(-1)
    elif not (row > -INF).any():
        tied = torch.arange(row.numel())
    else:
        # One definition on both backends (the fused op's; the sort path cuts the same).
        return exact_distribution(torch.where(row.isnan(), -INF, row), params)
    # Both backends rank ties in token-id order, so the cut falls inside the tie group.
    j = torch.arange(tied.numel())
    tied = tied[(j < params.top_k) & (j / tied.numel() <= params.top_p)]
    expected = torch.zeros(row.numel(), dtype=torch.float64)
    expected[tied] = 1.0 / tied.numel()
    return expected


def sampled_rows():
    cases = []
    row = base_row()
    row[6] = INF
    cases.append(("one +inf is always chosen", row))
    row = base_row()
    row[[1, 8, 10]] = INF
    cases.append(("three +inf share the mass", row))
    row = base_row()
    row[[11, 9, 2]] = NAN
    cases.append(("NaN never sampled", row))
    row = base_row()
    row[[11, 3]] = -INF
    cases.append(("-inf never sampled", row))
    cases.append(("all NaN: uniform", torch.full((VOCAB,), NAN)))
    cases.append(("all -inf: uniform", torch.full((VOCAB,), -INF)))
    row = torch.full((VOCAB,), -INF)
    row[[0, 4]] = NAN
    cases.append(("NaN and -inf only: uniform", row))
    return cases


SAMPLED = sampled_rows()
FILTERS = {
    "temperature only": SamplingParams(temperature=1.0),
    "top_k + top_p": SamplingParams(temperature=0.8, top_k=6, top_p=0.9),
    "min_p": SamplingParams(temperature=1.2, min_p=0.05),
}


@pytest.mark.parametrize("what, row", [pytest.param(w, r, id=w) for w, r in SAMPLED])
@pytest.mark.parametrize("filters", sorted(FILTERS))
def test_sampled_rows_follow_the_documented_distribution(backend, device, what, row, filters):
    n = 50_000 if is_gpu(device) else 6_000
    params = FILTERS[filters]
    torch.manual_seed(7)
    ids, out = sample(backend, device, row.repeat(n, 1), [params] * n, return_logprob=True)
    expected = expected_with_non_finite(row, params)
    assert_matches_distribution(ids, expected, f"{backend}/{filters}/{what}")
    assert not out.next_token_logprobs.isnan().any()


def test_large_finite_logits_that_the_temperature_overflows_keep_their_order(backend, device):
    row = torch.zeros(VOCAB)
    row[[2, 5]] = torch.tensor([1e34, 3e33])  # / 1e-6 overflows float32 to +inf
    params = SamplingParams(temperature=1e-6)
    ids, out = sample(backend, device, row.repeat(200, 1), [params] * 200, return_logprob=True)
    # Both overflow to the largest float32 and tie; the zeros stay impossible.
    assert set(ids.tolist()) <= {2, 5} and not out.next_token_logprobs.isnan().any()


def test_without_detection_nothing_is_reported(backend, monkeypatch, caplog):
    monkeypatch.setattr(
        sampler_module, "report_non_finite", lambda *a: pytest.fail("detection ran")
    )
    logits = torch.full((2, VOCAB), NAN)
    with caplog.at_level(logging.WARNING):
        sample(backend, "cpu", logits, [SamplingParams()] * 2)
    assert caplog.text == ""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA's sync debug mode needs a GPU")
def test_sanitising_costs_no_host_sync_on_the_gpu():
    logits = base_row().repeat(8, 1)
    logits[1, 3], logits[2, 4], logits[3] = NAN, INF, -INF
    params = [SamplingParams(top_k=5, top_p=0.9), SamplingParams(temperature=0)] * 4
    info = SamplingBatchInfo.from_sampling_params(params, "cuda")
    sampler = Sampler("flashinfer")
    out = LogitsProcessorOutput(logits.cuda())
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        ids = sampler(out, info, False, [0] * 8, [None] * 8)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert ids[1] == 11 and ids[3] == 0  # greedy rows: NaN skipped; all -inf -> token 0


REPORTED = [
    ("a NaN", lambda x: x.__setitem__((1, 3), NAN), r"1 NaN, 0 \+inf and 0 rows .* \(rows \[1\]\)"),
    (
        "a +inf",
        lambda x: x.__setitem__((0, 2), INF),
        r"0 NaN, 1 \+inf and 0 rows .* \(rows \[0\]\)",
    ),
    (
        "a -inf-only row",
        lambda x: x[2].fill_(-INF),
        r"0 NaN, 0 \+inf and 1 rows with no logit above -inf \(rows \[2\]\)",
    ),
    (
        "a NaN-only row",
        lambda x: x[3].fill_(NAN),
        rf"{VOCAB} NaN, 0 \+inf and 1 rows .* \(rows \[3\]\)",
    ),
]


@pytest.mark.parametrize("spoil, message", [pytest.param(f, m, id=w) for w, f, m in REPORTED])
def test_detection_warns_and_samples_the_sanitised_logits(
    backend, device, monkeypatch, caplog, spoil, message
):
    monkeypatch.setenv("SGLANG_ENABLE_NAN_DETECTION", "1")
    monkeypatch.setenv("SGLANG_IS_IN_CI", "0")
    logits = base_row().repeat(4, 1)
    spoil(logits)
    with caplog.at_level(logging.WARNING):
        ids, _ = sample(backend, device, logits, [SamplingParams(temperature=0)] * 4)
    assert "Detected errors during sampling! The logits hold" in caplog.text
    assert re.search(message, caplog.text), caplog.text
    monkeypatch.delenv("SGLANG_ENABLE_NAN_DETECTION")
    same, _ = sample(backend, device, logits, [SamplingParams(temperature=0)] * 4)
    assert torch.equal(ids, same)  # detection only reports


def test_detection_ignores_minus_inf_masks_next_to_finite_logits(device, monkeypatch, caplog):
    monkeypatch.setenv("SGLANG_ENABLE_NAN_DETECTION", "1")
    monkeypatch.setenv("SGLANG_IS_IN_CI", "1")  # would raise if it reported anything
    logits = base_row().repeat(3, 1)
    logits[:, ::2] = -INF  # banned tokens, as a grammar mask or logit bias leaves them
    with caplog.at_level(logging.WARNING):
        ids, _ = sample("pytorch", device, logits, [SamplingParams(top_k=3)] * 3)
    assert caplog.text == "" and all(i % 2 == 1 for i in ids.tolist())


@pytest.mark.parametrize("value", [NAN, INF], ids=["NaN", "+inf"])
def test_detection_raises_in_ci(device, monkeypatch, value):
    monkeypatch.setenv("SGLANG_ENABLE_NAN_DETECTION", "true")
    monkeypatch.setenv("SGLANG_IS_IN_CI", "true")
    logits = torch.randn(2, 10)
    logits[1, 1] = value
    with pytest.raises(ValueError, match="Detected errors during sampling! The logits hold"):
        sample("pytorch", device, logits, [SamplingParams()] * 2)


def test_a_malformed_boolean_environment_variable_is_named(monkeypatch):
    monkeypatch.setenv("SGLANG_ENABLE_NAN_DETECTION", "maybe")
    with pytest.raises(ValueError, match="SGLANG_ENABLE_NAN_DETECTION='maybe' is not a boolean"):
        Sampler("pytorch")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("greedy", [True, False], ids=["greedy", "sampled"])
def test_the_callers_logits_are_not_modified_and_any_float_dtype_works(
    backend, device, dtype, greedy
):
    logits = base_row().repeat(3, 1).to(dtype)
    logits[0, 4], logits[1, 2], logits[2] = INF, NAN, NAN
    before = logits.clone()
    params = SamplingParams(temperature=0 if greedy else 0.7, top_k=4)
    ids, _ = sample(backend, device, logits, [params] * 3)
    assert torch.equal(logits.isnan(), before.isnan())
    assert torch.equal(logits.nan_to_num(), before.nan_to_num())
    assert ids[0] == 4 and ids[1] != 2
