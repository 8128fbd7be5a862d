"""Test helpers for the sampling layer (importable as ``sglang.test.sampler_testing``):
the exact distribution a request samples from, for the tests and the main job."""

from __future__ import annotations

import torch

from sglang.srt.sampling.sampling_params import TOP_K_ALL, SamplingParams


def _keep_sorted(p, top_k, top_p):
    """Top-k and top-p masks of a row with distinct values (no ties)."""
    order = torch.argsort(p, descending=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(p.numel())
    sorted_p = p[order]
    mass_above = (torch.cumsum(sorted_p, 0) - sorted_p)[rank]
    return (rank < top_k) & ((mass_above < top_p) | (top_p >= 1))


def exact_distribution(
    logits_row: torch.Tensor, params: SamplingParams, backend: str
) -> torch.Tensor:
    """What a request samples from. The backends differ only with min-p next to top-k
    or top-p: the kernels renormalise after each filter (as upstream SGLang does), the
    sort-based path cuts all three on the original probabilities."""
    p = torch.softmax(logits_row.double() / params.temperature, dim=-1)
    if params.top_k == 1:
        return torch.nn.functional.one_hot(p.argmax(), p.numel()).double()
    k = min(params.top_k, p.numel()) if params.top_k < TOP_K_ALL else p.numel()
    if params.min_p > 0 and backend == "flashinfer":
        p = torch.where(_keep_sorted(p, k, 1.0), p, 0.0)
        p = p / p.sum()
        p = torch.where(_keep_sorted(p, p.numel(), params.top_p), p, 0.0)
        p = p / p.sum()
        q = torch.where(p >= params.min_p * p.max(), p, 0.0)
        return q / q.sum()
    keep = _keep_sorted(p, k, params.top_p)
    if params.min_p > 0:
        keep &= p >= params.min_p * p.max()
    q = torch.where(keep, p, 0.0)
    return q / q.sum()
