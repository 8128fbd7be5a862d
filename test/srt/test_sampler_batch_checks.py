"""Sampler.forward: every argument that does not have one entry per logits row is a
ValueError naming it, on every path (all-greedy, sampling, logprobs), instead of a
silent broadcast or truncation."""

import dataclasses

import numpy
import pytest
import torch

from sglang.srt.layers.logits_processor import LogitsProcessorOutput
from sglang.srt.layers.sampler import Sampler
from sglang.srt.sampling.sampling_batch_info import SamplingBatchInfo
from sglang.srt.sampling.sampling_params import SamplingParams

BS, VOCAB = 4, 30
KINDS = {
    "all greedy": SamplingParams(temperature=0),
    "sampling": SamplingParams(top_k=5, top_p=0.9),
    "seeded": SamplingParams(min_p=0.1, sampling_seed=3),
}


def forward(backend, info, logits=None, nums=None, ids=None, positions=None, **kw):
    logits = torch.randn(BS, VOCAB) if logits is None else logits
    if positions is None and info.sampling_seed is not None:
        positions = torch.arange(logits.size(0))
    return Sampler(backend)(
        LogitsProcessorOutput(logits),
        info,
        kw.get("return_logprob", True),
        [1] * BS if nums is None else nums,
        [None] * BS if ids is None else ids,
        positions=positions,
    )


def info_for(kind, rows=BS):
    return SamplingBatchInfo.from_sampling_params([KINDS[kind]] * rows, "cpu")


@pytest.fixture(params=sorted(KINDS))
def kind(request):
    return request.param


def test_a_well_formed_batch_passes(backend, kind):
    assert forward(backend, info_for(kind)).shape == (BS,)


@pytest.mark.parametrize(
    "nums, ids",
    [
        ((0, 2, 0, VOCAB), [None, (0, VOCAB - 1), [], None]),  # tuples, both bounds
        ([numpy.int64(1), 0, numpy.int32(3), 0], [[numpy.int64(4)], None, None, None]),
    ],
    ids=["tuples and bounds", "numpy integers"],
)
def test_every_integer_form_of_a_logprob_request_passes(backend, kind, nums, ids):
    """The plain-int lists take a fast check; every other integer form, the entry-by-entry
    one: both accept what the batch allows."""
    assert forward(backend, info_for(kind), nums=nums, ids=ids).shape == (BS,)


@pytest.mark.parametrize("info_rows", [1, 3, 5], ids=lambda n: f"info_rows={n}")
def test_logits_rows_must_match_the_batch_info(backend, kind, info_rows):
    with pytest.raises(
        ValueError,
        match=rf"SamplingBatchInfo.temperatures has shape \[{info_rows}, 1\], expected "
        rf"\[{BS}, 1\]: one entry per logits row \({BS} rows\)",
    ):
        forward(backend, info_for(kind, info_rows))


FIELD_CASES = [
    ("temperatures 1-D", "temperatures", torch.ones(BS), r"\[4\], expected \[4, 1\]"),
    ("temperatures short", "temperatures", torch.ones(BS - 1, 1), r"\[3, 1\], expected \[4, 1\]"),
    ("top_ps short", "top_ps", torch.ones(BS - 1), r"\[3\], expected \[4\]"),
    ("top_ks long", "top_ks", torch.ones(BS + 1, dtype=torch.int32), r"\[5\], expected \[4\]"),
    ("top_ks 2-D", "top_ks", torch.ones(BS, 1, dtype=torch.int32), r"\[4, 1\], expected \[4\]"),
    ("min_ps of 1", "min_ps", torch.zeros(1), r"\[1\], expected \[4\]"),
    (
        "sampling_seed short",
        "sampling_seed",
        torch.zeros(2, dtype=torch.int64),
        r"\[2\], expected \[4\]",
    ),
]


@pytest.mark.parametrize(
    "field, value, shapes", [pytest.param(f, v, s, id=case) for case, f, v, s in FIELD_CASES]
)
def test_every_per_row_tensor_must_have_one_entry_per_row(backend, kind, field, value, shapes):
    info = dataclasses.replace(info_for(kind), **{field: value})
    with pytest.raises(ValueError, match=rf"SamplingBatchInfo.{field} has shape {shapes}"):
        forward(backend, info)


def test_batch_info_on_another_device_is_named(backend, kind):
    info = dataclasses.replace(info_for(kind), top_ps=torch.ones(BS, device="meta"))
    with pytest.raises(ValueError, match=r"SamplingBatchInfo.top_ps is on meta, the logits on cpu"):
        forward(backend, info)


LOGPROB_CASES = [
    (
        "top_logprobs_nums short",
        {"nums": [1] * (BS - 1)},
        r"top_logprobs_nums must be a list with one entry per logits row \(4\), or None; got 3",
    ),
    ("top_logprobs_nums empty", {"nums": []}, r"top_logprobs_nums must be a list .* got 0"),
    (
        "top_logprobs_nums long",
        {"nums": [1] * (BS + 1)},
        r"top_logprobs_nums must be a list .* got 5",
    ),
    (
        "top_logprobs_nums negative",
        {"nums": [1, -1, 0, 0]},
        r"top_logprobs_nums\[1\] must be an integer in \[0, 30\] \(vocab size\), got -1",
    ),
    (
        "top_logprobs_nums above vocab",
        {"nums": [0, 0, 0, 31]},
        r"top_logprobs_nums\[3\] must be an integer in \[0, 30\]",
    ),
    (
        "top_logprobs_nums float",
        {"nums": [0, 2.0, 0, 0]},
        r"top_logprobs_nums\[1\] must be an integer .* got 2.0",
    ),
    (
        "token_ids_logprobs short",
        {"ids": [None] * (BS - 1)},
        r"token_ids_logprobs must be a list with one entry per logits row \(4\), or None; got 3",
    ),
    (
        "token_ids_logprobs a tensor",
        {"ids": torch.zeros(BS)},
        r"token_ids_logprobs must be a list .* got Tensor",
    ),
    (
        "token id = vocab",
        {"ids": [None, [0, 30], None, None]},
        r"token_ids_logprobs\[1\] must be None or token ids in \[0, 30\), got 30",
    ),
    (
        "token id negative",
        {"ids": [[-1], None, None, None]},
        r"token_ids_logprobs\[0\] must be None or token ids in \[0, 30\), got -1",
    ),
    ("token id float", {"ids": [None, None, None, [2.0]]}, r"token_ids_logprobs\[3\] .* got 2.0"),
]


@pytest.mark.parametrize("return_logprob", [True, False], ids=["logprobs", "no logprobs"])
@pytest.mark.parametrize(
    "kwargs, message", [pytest.param(kw, m, id=case) for case, kw, m in LOGPROB_CASES]
)
def test_logprob_requests_must_match_the_batch(backend, kind, kwargs, message, return_logprob):
    with pytest.raises(ValueError, match=message):
        forward(backend, info_for(kind), return_logprob=return_logprob, **kwargs)


def test_none_means_no_request_asks_for_logprobs(backend, kind):
    out = LogitsProcessorOutput(torch.randn(BS, VOCAB))
    positions = torch.arange(BS)
    Sampler(backend)(out, info_for(kind), True, None, None, positions=positions)
    assert out.next_token_logprobs.shape == (BS,)
    assert out.next_token_top_logprobs_val is None and out.next_token_token_ids_logprobs_val is None


POSITION_CASES = [
    (
        "positions short",
        torch.arange(BS - 1),
        r"positions must be a tensor of shape \[4\] \(one per row\), got \[3\]",
    ),
    (
        "positions 2-D",
        torch.arange(BS).view(BS, 1),
        r"positions must be a tensor of shape \[4\] .* got \[4, 1\]",
    ),
    (
        "positions a list",
        [0, 1, 2, 3],
        r"positions must be a tensor of shape \[4\] .* got \[0, 1, 2, 3\]",
    ),
    ("positions float", torch.zeros(BS), r"positions must be an integer tensor, got torch.float32"),
    (
        "positions bool",
        torch.zeros(BS, dtype=torch.bool),
        r"positions must be an integer tensor, got torch.bool",
    ),
    (
        "positions on meta",
        torch.zeros(BS, dtype=torch.int64, device="meta"),
        r"positions is on meta, the logits on cpu",
    ),
]


@pytest.mark.parametrize(
    "positions, message", [pytest.param(p, m, id=case) for case, p, m in POSITION_CASES]
)
def test_positions_must_be_one_integer_per_row(backend, kind, positions, message):
    with pytest.raises(ValueError, match=message):
        forward(backend, info_for(kind), positions=positions)


@pytest.mark.parametrize(
    "logits, shape",
    [
        pytest.param(torch.randn(VOCAB), r"\[30\]", id="1-D logits"),
        pytest.param(torch.randn(BS, 0), r"\[4, 0\]", id="empty vocab"),
        pytest.param(torch.randn(1, BS, VOCAB), r"\[1, 4, 30\]", id="3-D logits"),
    ],
)
def test_logits_must_be_a_batch_by_vocab_matrix(backend, logits, shape):
    with pytest.raises(
        ValueError,
        match=rf"next_token_logits must be a 2-D \[batch, vocab>=1\] tensor, got {shape}",
    ):
        forward(backend, info_for("sampling"), logits=logits)


def test_seeds_without_positions_are_a_clear_error(backend):
    info = info_for("seeded")
    out = LogitsProcessorOutput(torch.randn(BS, VOCAB))
    with pytest.raises(ValueError, match="needs positions when a request sets sampling_seed"):
        Sampler(backend)(out, info, False, None, None)
