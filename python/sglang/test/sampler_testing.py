"""Test helpers for the sampling layer (importable as ``sglang.test.sampler_testing``):
the exact distribution a request samples from, for the tests and the main job.

Both Sampler backends sample by one definition (docs/sampling.md, "The fused seeded
op"): the kernel backend runs the fused op, the pytorch backend sorts and cuts by the
same rules. The filter here is that definition's own kept set,
``sgl_kernel.sampling_reference.fused_keep``, evaluated in float64 on the softmax of the
logits, so a test compares the Sampler with the rule the op documents, not with a second
copy of it.
"""

from __future__ import annotations

import torch

from sgl_kernel.sampling_reference import fused_keep
from sglang.srt.sampling.sampling_params import SamplingParams


def exact_distribution(logits_row: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """The float64 distribution over the vocabulary that one request samples from.

    top-k, top-p and min-p all cut the original distribution (no renormalisation between
    filters), top-p relative to the row total, ties ranked by token id (top-k on tied
    logits keeps the lowest ids). top_p and min_p are rounded to float32 first, as the
    Sampler passes them. The Sampler itself filters float32 probabilities, so it can
    differ from this float64 distribution only where a cut falls within float32 rounding.
    """
    p = torch.softmax(logits_row.double().view(1, -1) / params.temperature, dim=-1)
    if params.is_greedy:
        return torch.nn.functional.one_hot(p.argmax(), p.size(-1)).double()
    keep = fused_keep(
        p,
        torch.tensor([params.top_k], dtype=torch.int32),  # TOP_K_ALL (1 << 30) fits
        torch.tensor([params.top_p], dtype=torch.float32),
        torch.tensor([params.min_p], dtype=torch.float32),
    )
    q = torch.where(keep, p, 0.0)
    return (q / q.sum(dim=-1, keepdim=True)).view(-1)
