"""Test helpers for the sampling layer (importable as ``sglang.test.sampler_testing``):
the exact distribution a request samples from, for the tests and the main job.

The filters are the kernels' own keep rules from ``sgl_kernel.sampling_reference``
(top_k_keep, top_p_keep, min_p_keep), evaluated in float64 on the softmax of the
logits, so a test compares the Sampler with the rule the kernels document, not with a
second copy of it.
"""

from __future__ import annotations

import torch

from sgl_kernel.sampling_reference import min_p_keep, top_k_keep, top_p_keep
from sglang.srt.sampling.sampling_params import SamplingParams


def _renormalized(p: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    q = torch.where(keep, p, 0.0)
    return q / q.sum(dim=-1, keepdim=True)


def exact_distribution(
    logits_row: torch.Tensor, params: SamplingParams, backend: str
) -> torch.Tensor:
    """The float64 distribution over the vocabulary that one request samples from.

    The backends differ only where min-p meets top-k or top-p: the kernels renormalise
    after each filter (top-k, then top-p, then min-p, as upstream SGLang does), the
    sort-based path cuts all three on the original probabilities. They also differ on
    ties at the top-k pivot (the kernels keep them all, the sort path cuts by sort
    order): use logits without ties.
    """
    if backend not in ("flashinfer", "pytorch"):
        raise ValueError(f"backend must be 'flashinfer' or 'pytorch', got {backend!r}")
    p = torch.softmax(logits_row.double().view(1, -1) / params.temperature, dim=-1)
    if params.is_greedy:
        return torch.nn.functional.one_hot(p.argmax(), p.size(-1)).double()
    k = torch.tensor([params.top_k])  # TOP_K_ALL (1 << 30) exceeds any vocabulary
    top_p = torch.tensor([params.top_p], dtype=torch.float64)
    min_p = torch.tensor([params.min_p], dtype=torch.float64)
    if params.min_p > 0 and backend == "flashinfer":
        p = _renormalized(p, top_k_keep(p, k))
        p = _renormalized(p, top_p_keep(p, top_p))
        return _renormalized(p, min_p_keep(p, min_p)).view(-1)
    keep = top_k_keep(p, k) & top_p_keep(p, top_p)
    if params.min_p > 0:
        keep &= min_p_keep(p, min_p)
    return _renormalized(p, keep).view(-1)
