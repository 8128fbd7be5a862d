"""FlashInfer's softmax, sampling_from_logits, top_k_top_p_sampling_from_logits and
chain_speculative_sampling on sgl_kernel (issue 18), on the CPU reference and the GPU.

Sampling is checked by Pearson's chi-square at a false-alarm rate of ALPHA per case
(sgl_kernel.testing) with fixed seeds.
"""

from __future__ import annotations

import pytest
import torch

import sgl_kernel
from sgl_kernel.testing import (
    OP_CASE,
    Params,
    assert_matches_distribution,
    assert_rows_match_distribution,
    is_gpu,
    synchronize,
)


def logits_rows(rows, vocab, seed, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, vocab, generator=g) * scale


def generator(device, seed):
    return torch.Generator(device=device).manual_seed(seed)


# ----------------------------------------------------------------------------- softmax


@pytest.mark.parametrize("temperature", [None, 0.7, "per-row"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_softmax_is_the_temperature_scaled_softmax(device, temperature, dtype):
    logits = logits_rows(5, 300, 1).to(dtype)
    logits[1, :200] = float("-inf")
    t = {None: None, 0.7: 0.7, "per-row": torch.tensor([0.5, 1.0, 2.0, 0.1, 1.5])}[temperature]
    want_t = 1.0 if t is None else (t if isinstance(t, float) else t.double().view(-1, 1))
    want = torch.softmax(logits.float().double() / want_t, -1)
    t_arg = t.to(device) if isinstance(t, torch.Tensor) else t
    got = sgl_kernel.softmax(logits.to(device), temperature=t_arg, enable_pdl=False)
    assert got.dtype == torch.float32 and got.device.type == torch.device(device).type
    torch.testing.assert_close(got.cpu().double(), want, atol=1e-6, rtol=1e-5)


def test_softmax_temperature_shape_rules(device):
    logits = logits_rows(4, 10, 2).to(device)
    for bad, match in [
        (torch.ones(3), "one value per row"),
        (torch.ones(4, 1), "1-D tensor"),
        (torch.tensor(1.0), "1-D tensor"),
    ]:
        with pytest.raises(ValueError, match=match):
            sgl_kernel.softmax(logits, temperature=bad.to(device))
    with pytest.raises(TypeError, match="logits must be float16"):
        sgl_kernel.softmax(logits.int())


# ----------------------------------------------------------------------------- from logits


def test_sampling_from_logits_draws_softmax(device):
    rows, copies, vocab = 3, 20000 if is_gpu(device) else 6000, 40
    logits = logits_rows(rows, vocab, 3)
    logits[2, ::3] = float("-inf")
    indices = torch.arange(rows, dtype=torch.int64).repeat_interleave(copies)
    ids = sgl_kernel.sampling_from_logits(
        logits.to(device), indices=indices.to(device), generator=generator(device, 4)
    )
    assert ids.dtype == torch.int32 and ids.shape == (rows * copies,)
    assert_rows_match_distribution(
        ids, indices, torch.softmax(logits.double(), -1), "sampling_from_logits"
    )


def test_sampling_from_logits_check_nan(device):
    logits = logits_rows(2, 8, 5)
    logits[1, 3] = float("nan")
    with pytest.raises(ValueError, match="logits contains NaN"):
        sgl_kernel.sampling_from_logits(logits.to(device), check_nan=True)


@pytest.mark.parametrize("order", ["top_k_first", "joint"])
def test_top_k_top_p_from_logits_draws_the_filtered_softmax(device, order):
    rows, copies, vocab = 4, 20000 if is_gpu(device) else 6000, 30
    logits = logits_rows(rows, vocab, 6, scale=1.5)
    top_k = torch.tensor([3, 10, 30, 1 << 30], dtype=torch.int32)
    top_p = torch.tensor([0.9, 0.5, 0.8, 1.0])
    probs = torch.softmax(logits.double(), -1).float()
    case = OP_CASE["top_k_first_sampling" if order == "top_k_first" else "joint_sampling"]
    dist = case.expected(probs, Params(top_k=top_k, top_p=top_p))
    indices = torch.arange(rows).repeat_interleave(copies)
    ids = sgl_kernel.top_k_top_p_sampling_from_logits(
        logits.to(device), top_k.to(device), top_p.to(device), indices=indices.to(device),
        filter_apply_order=order, generator=generator(device, 7),
    )  # fmt: skip
    assert_rows_match_distribution(ids, indices, dist, f"from logits, {order}")


@pytest.mark.parametrize("order", ["top_k_first", "joint"])
def test_from_logits_matches_from_probs_for_one_generator_state(device, order):
    """FlashInfer's alignment: the same generator state gives the same tokens as sampling
    softmax(logits) with the probability function (allowing the rounding of two softmax
    paths to move a handful of boundary draws)."""
    logits = logits_rows(256, 500, 8, scale=5.0).to(device)
    got = sgl_kernel.top_k_top_p_sampling_from_logits(
        logits, 50, 0.7, filter_apply_order=order, generator=generator(device, 9)
    )
    want = sgl_kernel.top_k_top_p_sampling_from_probs(
        torch.softmax(logits, -1), 50, 0.7, filter_apply_order=order,
        generator=generator(device, 9),
    )  # fmt: skip
    assert (got == want).float().mean() >= 0.99


def test_from_logits_rejects_an_unknown_order(device):
    with pytest.raises(ValueError, match="filter_apply_order must be"):
        sgl_kernel.top_k_top_p_sampling_from_logits(
            logits_rows(2, 8, 10).to(device), 2, 0.5, filter_apply_order="top_p_first"
        )
    with pytest.raises(ValueError, match="one value per row"):
        sgl_kernel.top_k_top_p_sampling_from_logits(
            logits_rows(2, 8, 10).to(device), torch.tensor([2]).to(device), 0.5
        )


# ----------------------------------------------------------------------------- chain


def chain_inputs(batch, n, vocab, seed):
    g = torch.Generator().manual_seed(seed)
    draft = torch.rand(1, n, vocab, generator=g) ** 2
    draft = (draft / draft.sum(-1, keepdim=True)).repeat(batch, 1, 1)
    target = torch.rand(1, n + 1, vocab, generator=g) ** 2
    target[..., 0] = 0  # a token the target never emits
    target = (target / target.sum(-1, keepdim=True)).repeat(batch, 1, 1)
    # draft tokens drawn from the draft distributions, as a draft model would
    ids = torch.stack(
        [torch.multinomial(draft[:, i], 1, generator=g).view(-1) for i in range(n)], 1
    )
    return draft, ids.int(), target


def test_chain_emits_the_target_distribution(device):
    batch = 40000 if is_gpu(device) else 12000
    draft, ids, target = chain_inputs(batch, 2, 6, 11)
    out, accepted, emitted = sgl_kernel.chain_speculative_sampling(
        draft.to(device), ids.to(device), target.to(device), generator=generator(device, 12)
    )
    synchronize(device)
    out, emitted = out.cpu(), emitted.cpu()
    assert out.shape == (batch, 3) and out.dtype == torch.int32
    # First emitted token ~ target[0]; after an accepted first draft token, the second ~
    # target[1] (the draws are the target model's, whatever the draft proposed).
    assert_matches_distribution(out[:, 0], target[0, 0].double(), "chain position 0")
    kept = emitted >= 1
    assert_matches_distribution(out[kept, 1], target[0, 1].double(), "chain position 1")
    for row in range(200):
        m = int(emitted[row])
        assert out[row, :m].tolist() == ids[row, :m].tolist()
        assert (out[row, m + 1 :] == -1).all()
        assert out[row, m] >= 0
    assert bool(((out != -1).sum(1) == emitted + 1).all())
    assert bool((accepted.cpu() >= emitted).all())


def test_chain_one_hot_target_is_reproduced_and_counters_add(device):
    batch, n, vocab = 16, 3, 11
    g = torch.Generator().manual_seed(13)
    draft = torch.rand(batch, n, vocab, generator=g)
    draft /= draft.sum(-1, keepdim=True)
    ids = torch.randint(vocab, (batch, n), generator=g, dtype=torch.int32)
    tokens = torch.randint(vocab, (batch, n + 1), generator=g)
    tokens[:, :n] = ids
    target = torch.zeros(batch, n + 1, vocab).scatter_(2, tokens.unsqueeze(-1), 1.0)
    acc = torch.full((batch,), 5, dtype=torch.int32, device=device)
    emi = torch.full((batch,), 7, dtype=torch.int32, device=device)
    out, acc2, emi2 = sgl_kernel.chain_speculative_sampling(
        draft.to(device), ids.long().to(device), target.to(device), acc, emi
    )
    assert acc2 is acc and emi2 is emi
    assert out.cpu().tolist() == tokens.int().tolist()
    assert acc.cpu().tolist() == [5 + n] * batch and emi.cpu().tolist() == [7 + n] * batch


def test_chain_bad_input(device):
    draft, ids, target = chain_inputs(3, 2, 5, 14)
    draft, ids, target = draft.to(device), ids.to(device), target.to(device)
    with pytest.raises(RuntimeError, match=r"target_probs must have shape \[3, 3, 5\]"):
        sgl_kernel.chain_speculative_sampling(draft, ids, target[:, :2])
    with pytest.raises(RuntimeError, match=r"draft_token_ids must lie in \[0, 5\)"):
        sgl_kernel.chain_speculative_sampling(draft, ids + 5, target)
    with pytest.raises(RuntimeError, match=r"draft_token_ids must have shape \[3, 2\]"):
        sgl_kernel.chain_speculative_sampling(draft, ids[:, :1], target)
    with pytest.raises(ValueError, match="must be an int32 tensor"):
        sgl_kernel.chain_speculative_sampling(
            draft, ids, target, torch.zeros(3, dtype=torch.int64, device=device)
        )
    with pytest.raises(TypeError, match="draft_token_ids must be an integer tensor"):
        sgl_kernel.chain_speculative_sampling(draft, ids.float(), target)


def test_chain_opcheck(device):
    draft, ids, target = chain_inputs(4, 2, 7, 15)
    args = [
        draft.to(device), ids.to(device), target.to(device),
        torch.empty(4, 3, dtype=torch.int32, device=device),
        torch.zeros(4, dtype=torch.int32, device=device),
        torch.zeros(4, dtype=torch.int32, device=device),
        True, None,
    ]  # fmt: skip
    torch.library.opcheck(
        torch.ops.sgl_kernel.chain_speculative_sampling.default,
        args,
        test_utils=("test_schema", "test_faketensor"),
    )
