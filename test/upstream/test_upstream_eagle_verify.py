"""Upstream SGLang 0.5.23's EAGLE tree verify with sampling, its MUSA branch forced, on our
``tree_speculative_sampling_target_only`` (and our renorm functions).

``eagle_utils.eagle_sample`` runs as upstream wrote it: temperature softmax, top-k and
top-p renormalisation of the target logits, coins from torch.rand, then the tree kernel.
The batch's ``SamplingBatchInfo`` comes from upstream's ``from_schedule_batch``; the draft
tree is synthetic (the same tree for R copies of one request). Each row's output (accepted
draft tokens plus the bonus token, read through ``accept_index``) must follow the exact
distribution of sampling autoregressively from upstream's filtered target rows along the
tree: Pearson chi-square at a false-alarm rate of ``sgl_kernel.testing.ALPHA``, fixed
seeds.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from test_upstream_sampler import Batch, Req  # noqa: E402  (this folder's own module)

import sgl_kernel
from sgl_kernel import sampling_reference as ref
from sgl_kernel.testing import assert_matches_distribution

VOCAB = 12
# Draft tree: node -> (parent, token); siblings hold distinct tokens.
TREE = [(-1, 0), (0, 3), (0, 7), (0, 1), (1, 5), (1, 2), (2, 9), (4, 4), (4, 3)]
DEPTH = 4  # max_tree_depth: accept_index width (up to 3 draft tokens + the bonus)
COPIES = 6000


def tree_links():
    n = len(TREE)
    nxt, sib = [-1] * n, [-1] * n
    for i in range(1, n):
        p = TREE[i][0]
        if nxt[p] == -1:
            nxt[p] = i
        else:
            c = nxt[p]
            while sib[c] != -1:
                c = sib[c]
            sib[c] = i
    return nxt, sib


def node_logits():
    """One logits row per node, with the node's children likely enough to go deep."""
    g = torch.Generator().manual_seed(2024)
    logits = torch.randn(len(TREE), VOCAB, generator=g, dtype=torch.float64)
    for i in range(1, len(TREE)):
        logits[TREE[i][0], TREE[i][1]] += 1.5
    return logits


def filtered_targets(logits, temperature, top_k, top_p):
    """What upstream's verify samples from at each node: softmax(logits / T), then top-k
    renormalised, then top-p renormalised (float64, exact filter masks)."""
    p = torch.softmax(logits / temperature, -1)
    k = torch.full((p.size(0),), float(min(top_k, VOCAB)), dtype=torch.float64)
    p = torch.where(ref.top_k_keep(p, k), p, 0.0)
    p = p / p.sum(-1, keepdim=True)
    keep = ref.top_p_keep(p, torch.full((p.size(0),), top_p, dtype=torch.float64))
    p = torch.where(keep, p, 0.0)
    return p / p.sum(-1, keepdim=True)


def exact_sequences(target):
    kids = {i: {} for i in range(len(TREE))}
    for i in range(1, len(TREE)):
        kids[TREE[i][0]][TREE[i][1]] = i
    out = {}

    def visit(node, depth, prob, path):
        for v, q in enumerate(target[node].tolist()):
            seq = path + (v,)
            if depth < DEPTH - 1 and v in kids[node]:
                visit(kids[node][v], depth + 1, prob * q, seq)
            else:
                out[seq] = out.get(seq, 0.0) + prob * q

    visit(0, 0, 1.0, ())
    return out


def test_upstream_speculative_import_sites_bound_our_op(upstream):
    spec = upstream.speculative
    assert spec.verify_sampling.tree_speculative_sampling_target_only is (
        sgl_kernel.tree_speculative_sampling_target_only
    )
    assert spec.eagle_utils.tree_speculative_sampling_target_only is (
        sgl_kernel.tree_speculative_sampling_target_only
    )
    assert spec.spec_utils.TREE_SPEC_KERNEL_AVAILABLE


@pytest.mark.parametrize(
    "temperature,top_k,top_p", [(0.9, 1 << 30, 1.0), (0.7, 6, 0.85)], ids=["T", "T-k-p"]
)
def test_upstream_eagle_verify_samples_the_target_distribution(
    upstream, device, temperature, top_k, top_p
):
    spec = upstream.speculative
    n = len(TREE)
    nxt, sib = tree_links()
    params = upstream.SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p)
    params.normalize(None)
    params.verify(VOCAB)
    reqs = [Req(params) for _ in range(COPIES)]
    info = upstream.SamplingBatchInfo.from_schedule_batch(Batch(reqs, device), VOCAB)
    assert not info.is_all_greedy

    rows = lambda v: torch.tensor(v, dtype=torch.int64).repeat(COPIES, 1).to(device)  # noqa: E731
    verify_input = SimpleNamespace(
        draft_token=rows([t for _, t in TREE]).flatten(),
        draft_token_num=n,
        max_tree_depth=DEPTH,
        retrieve_index=torch.arange(COPIES * n, dtype=torch.int64, device=device).view(COPIES, n),
        retrieve_next_token=rows(nxt),
        retrieve_next_sibling=rows(sib),
        tree_topk=3,
        draft_probs=None,
    )
    logits = node_logits()
    batch = SimpleNamespace(
        device=device,
        forward_mode=SimpleNamespace(is_idle=lambda: False),
        seq_lens=torch.full((COPIES,), 10, dtype=torch.int64, device=device),
        sampling_info=info,
        return_logprob=False,
    )
    output = SimpleNamespace(next_token_logits=logits.float().repeat(COPIES, 1).to(device))
    torch.manual_seed(77)
    predict, accept_lens, accept_index = spec.eagle_utils.eagle_sample(verify_input, batch, output)

    predict, accept_lens, accept_index = predict.cpu(), accept_lens.cpu(), accept_index.cpu()
    exact = exact_sequences(filtered_targets(logits, temperature, top_k, top_p))
    outcomes = sorted(exact)
    position = {s: i for i, s in enumerate(outcomes)}
    ids = []
    for b in range(COPIES):
        slots = accept_index[b, : int(accept_lens[b])].tolist()
        seq = tuple(int(predict[s]) for s in slots)
        assert seq in position, f"row {b}: {seq} is not a sequence the tree can produce"
        ids.append(position[seq])
    expected = torch.tensor([exact[s] for s in outcomes], dtype=torch.float64)
    assert_matches_distribution(torch.tensor(ids), expected, f"EAGLE verify T={temperature}")
