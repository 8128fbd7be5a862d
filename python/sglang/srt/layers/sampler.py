"""Turn next-token logits into token ids (and logprobs) for a batch of requests.

The path a batch takes, top to bottom in Sampler.forward:

1. Checks (sampler_inputs.py): every per-row argument has one entry per logits row,
   else ValueError. With SGLANG_ENABLE_NAN_DETECTION, NaN / +inf logits are reported
   (a warning; ValueError in CI, SGLANG_IS_IN_CI) at the cost of one host sync.
2. Sample every row (one definition for every row, whatever its batch-mates use;
   docs/sampling.md, "From logits"): the scaled logits s = logits * float32(1 /
   temperature), non-finite values sanitised (+inf -> the largest float32, NaN and -inf
   -> the most negative); greedy rows (top_k == 1) take the argmax of s; the others
   keep, over the weights w = exp(s - max s) in order of weight (ties by token id), the
   tokens of rank < k whose higher-ranked mass is at most p times the row's total and
   whose weight is at least min_p times the largest, and draw among them.
3. Logprobs, if asked: log_softmax(s), computed only then, for the sampled token, the
   top-N tokens per request, and requested token ids.

Backends: "flashinfer" runs sgl_kernel's from-logits op
(top_k_top_p_min_p_sampling_from_logits; on MUSA from this tree's MUSA build, imported
in the is_musa() branch below): one call from logits to ids for every batch, greedy,
seeded or not, min-p or not, with no [batch, vocab] temporary; a filter whose batch flag
(need_top_k_sampling, need_top_p_sampling, need_min_p_sampling) says no request uses it
is left out, as the pytorch path leaves out min-p (fewer launches). "pytorch" computes s and
w with torch and sorts each row. The default is "flashinfer" whenever the kernels are
available for the logits' device (CUDA or MUSA), else "pytorch"; choose with
Sampler(sampling_backend=...) or SGLANG_SAMPLING_BACKEND.

Draws: a row's token is the Gumbel-max over its kept tokens with uniforms hashed from
(seed, position, token id) (sgl_kernel.sampling_reference.seeded_exponential, the one
definition of the hash). Requests with a sampling_seed use it, so the same seed and
position give the same token on both backends (except at float near-ties: the kernel
computes exp and its keys in float32, the pytorch path in torch's float32 exp and
float64 keys) and never depend on the batch slot or the batch-mates. On the kernel
backend the other rows get seeds drawn on the device from torch's generator at every
step (no host sync; graph-capturable); the pytorch backend draws them with
torch.multinomial.
"""

from __future__ import annotations

import logging
import os
from typing import List, Optional

import torch
from torch import nn

from sglang.srt.layers.logits_processor import LogitsProcessorOutput
from sglang.srt.layers.sampler_inputs import check_batch, report_non_finite, sanitize_logits
from sglang.srt.sampling.sampling_batch_info import SamplingBatchInfo
from sglang.srt.utils import get_bool_env_var, is_musa

logger = logging.getLogger(__name__)

SAMPLING_BACKENDS = ("flashinfer", "pytorch")
_KERNEL_DEVICES = ("cuda", "musa")

if is_musa():
    # Moore Threads GPUs: the fused sampling kernel from sgl-kernel's MUSA build.
    from sgl_kernel import top_k_top_p_min_p_sampling_from_logits
    from sgl_kernel.sampling_reference import seeded_exponential

    KERNELS_UNAVAILABLE_REASON: Optional[str] = None
else:
    try:
        from sgl_kernel import top_k_top_p_min_p_sampling_from_logits
        from sgl_kernel.sampling_reference import seeded_exponential

        KERNELS_UNAVAILABLE_REASON = None
    except ImportError as err:
        # The pytorch backend still samples unseeded requests; the seeded draw's hash
        # lives in sgl_kernel (one definition for the kernel, its reference and this
        # path), so seeded requests need it.
        KERNELS_UNAVAILABLE_REASON = f"sgl_kernel's sampling ops are not available: {err}"
        seeded_exponential = None


def resolve_sampling_backend(requested: Optional[str], device: torch.device) -> str:
    """The backend to use for logits on `device`; `requested` None means the default."""
    if requested is None:
        requested = os.environ.get("SGLANG_SAMPLING_BACKEND") or None
    if requested is None:
        kernels = KERNELS_UNAVAILABLE_REASON is None and device.type in _KERNEL_DEVICES
        return "flashinfer" if kernels else "pytorch"
    if requested not in SAMPLING_BACKENDS:
        raise ValueError(f"sampling backend must be one of {SAMPLING_BACKENDS}, got {requested!r}")
    if requested == "flashinfer" and KERNELS_UNAVAILABLE_REASON is not None:
        raise RuntimeError(
            f"sampling backend 'flashinfer' cannot run: {KERNELS_UNAVAILABLE_REASON}"
        )
    return requested


class Sampler(nn.Module):
    def __init__(self, sampling_backend: Optional[str] = None):
        super().__init__()
        if sampling_backend is not None:
            resolve_sampling_backend(
                sampling_backend, torch.device("cpu")
            )  # fail early on a bad name
        self.sampling_backend = sampling_backend
        self._backend_by_device: dict = {}  # resolved once per device type
        self.enable_nan_detection = get_bool_env_var("SGLANG_ENABLE_NAN_DETECTION")

    def forward(
        self,
        logits_output: LogitsProcessorOutput,
        sampling_info: SamplingBatchInfo,
        return_logprob: bool,
        top_logprobs_nums: Optional[List[int]],
        token_ids_logprobs: Optional[List[Optional[List[int]]]],
        positions: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Sample one token per row; returns int32 ids [bs] and fills logits_output's logprobs.

        Every per-row argument must have one entry per logits row (a ValueError names the
        one that does not): the SamplingBatchInfo tensors, top_logprobs_nums (ints in
        [0, vocab]) and token_ids_logprobs (None or token ids in [0, vocab) per row; None
        for the whole list means no request asks), and positions ([bs] integer tensor, the
        position of the token being sampled), which is needed only when some request has
        a sampling_seed.
        """
        logits = logits_output.next_token_logits
        check_batch(logits, sampling_info, top_logprobs_nums, token_ids_logprobs, positions)
        if self.enable_nan_detection:
            report_non_finite(logits)
        if sampling_info.sampling_seed is not None and positions is None:
            raise ValueError("Sampler.forward needs positions when a request sets sampling_seed")

        if self._backend_for(logits.device) == "pytorch":
            next_ids = self._sample_with_torch(logits, sampling_info, positions)
        else:
            next_ids = self._sample_with_kernel(logits, sampling_info, positions)

        if return_logprob:
            logprobs = torch.log_softmax(scaled_logits(logits, sampling_info), dim=-1)
            attach_logprobs(
                logits_output, logprobs, next_ids, top_logprobs_nums, token_ids_logprobs
            )
        return next_ids

    def _backend_for(self, device: torch.device) -> str:
        if device.type not in self._backend_by_device:
            self._backend_by_device[device.type] = resolve_sampling_backend(
                self.sampling_backend, device
            )
        return self._backend_by_device[device.type]

    @staticmethod
    def _sample_with_torch(logits, info: SamplingBatchInfo, positions) -> torch.Tensor:
        seeds = info.sampling_seed
        if seeds is not None and seeded_exponential is None:
            raise RuntimeError(
                "seeded sampling (sampling_seed) needs sgl_kernel's seeded_exponential: "
                f"{KERNELS_UNAVAILABLE_REASON}"
            )
        scaled = scaled_logits(logits, info)
        if info.is_all_greedy:
            return torch.argmax(scaled, dim=-1).to(torch.int32)  # ties to the lower id
        weights = torch.exp(scaled - scaled.amax(dim=-1, keepdim=True))
        next_ids = top_k_top_p_min_p_sampling_from_probs_torch(
            weights,
            info.top_ks,
            info.top_ps,
            info.min_ps,
            info.need_min_p_sampling,
            seeds,
            positions,
        )
        if info.has_greedy:  # the first maximum: ties to the lower id
            next_ids = torch.where(info.top_ks == 1, torch.argmax(scaled, dim=-1), next_ids)
        return next_ids.to(torch.int32)

    @staticmethod
    def _sample_with_kernel(logits, info: SamplingBatchInfo, positions) -> torch.Tensor:
        """One op from logits to ids: every row by its own temperature, filters and (seed,
        position); greedy rows (top_k == 1) take the argmax."""
        # No seeds: the op draws every row's seed on the device (no host sync). A seeded
        # batch's unseeded rows get fresh draws here, its seeded rows keep their own seed;
        # a batch whose every row is seeded needs no draw (numel is host metadata: no sync).
        seeds = info.sampling_seed
        rows = info.seeded_rows
        if seeds is not None and rows is not None and rows.numel() < seeds.numel():
            drawn = torch.randint(
                -(2**63), 2**63 - 1, seeds.shape, dtype=torch.int64, device=logits.device
            )
            seeds = drawn.index_copy(0, rows, seeds.index_select(0, rows))
        # A filter no request uses is not passed (the batch flags are trusted, as upstream's
        # Sampler trusts them): without top-k and top-p the op makes two launches, not four.
        # Flags that understate the tensors (from_sampling_params never sets such) would
        # leave those filters out here and not on the pytorch backend.
        return top_k_top_p_min_p_sampling_from_logits(
            logits,
            info.temperatures.view(-1),
            info.top_ks if info.need_top_k_sampling else None,
            info.top_ps if info.need_top_p_sampling else None,
            info.min_ps if info.need_min_p_sampling else None,
            seeds=seeds,
            positions=positions,
        )


def scaled_logits(logits: torch.Tensor, info: SamplingBatchInfo) -> torch.Tensor:
    """float32 logits * float32(1 / temperature) with non-finite values sanitised
    (sampler_inputs.py): the same s as the kernel's (both products round once)."""
    return sanitize_logits(logits * torch.reciprocal(info.temperatures), owned=True)


# ----------------------------------------------------------------------------- pytorch path


_FLOAT32 = torch.finfo(torch.float32)


def top_k_top_p_min_p_sampling_from_probs_torch(
    probs: torch.Tensor,
    top_ks: torch.Tensor,
    top_ps: torch.Tensor,
    min_ps: torch.Tensor,
    need_min_p_sampling: bool,
    sampling_seed: Optional[torch.Tensor] = None,
    positions: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Sort-based sampling with the fused op's definition (docs/sampling.md).

    Weights are the positive entries (NaN and negatives weigh 0); a row holding +inf or
    whose total S is not a normal float32 samples token 0. In order of weight (ties by
    token id) a token is cut at rank >= k, when the mass ranked above it exceeds p * S
    (float64; p >= 1 cuts nothing), or when its weight is below float32(max * min_p)
    (applied when need_min_p_sampling). Nothing kept: token 0. With sampling_seed the draw
    is the seeded Gumbel-max by (seed, position, token id), else torch.multinomial.
    """
    w = torch.where(probs > 0, probs, 0.0)
    # Stable: ties are ranked in token-id order, the same on every device.
    sorted_w, order = w.sort(dim=-1, descending=True, stable=True)
    ranks = torch.arange(probs.size(-1), device=probs.device).view(1, -1)
    cut = ranks >= top_ks.view(-1, 1)
    inclusive = sorted_w.double().cumsum(dim=-1)
    total = inclusive[:, -1:]  # S, summed in the same order: mass above never exceeds it
    top_p = top_ps.view(-1, 1).double()
    cut |= ((inclusive - sorted_w.double()) > top_p * total) & ~(top_p >= 1)
    if need_min_p_sampling:
        cut |= sorted_w < sorted_w[:, :1] * min_ps.view(-1, 1)  # float32 product
    valid = (total >= _FLOAT32.tiny) & (total <= _FLOAT32.max)
    valid &= ~(probs == float("inf")).any(dim=-1, keepdim=True)
    sorted_w = torch.where(cut | ~valid, 0.0, sorted_w)
    empty = (sorted_w[:, 0] <= 0).view(-1)  # the kept set is a prefix of the ranks
    sorted_w[:, 0] = torch.where(empty, 1.0, sorted_w[:, 0])  # something to draw from

    if sampling_seed is None:
        picked = torch.gather(order, 1, torch.multinomial(sorted_w, 1)).view(-1)
    else:
        kept = torch.zeros_like(sorted_w).scatter_(1, order, sorted_w)
        picked = seeded_categorical(kept, sampling_seed, positions)
    return torch.where(empty, torch.zeros_like(picked), picked)


def seeded_categorical(
    weights: torch.Tensor, seeds: torch.Tensor, positions: torch.Tensor
) -> torch.Tensor:
    """One draw per row proportional to weights: the Gumbel-max with the seeded draws
    (gumbel = -log E), ties to the lower token id (torch.argmax takes the first maximum)."""
    gumbel = -torch.log(seeded_exponential(seeds, positions, weights.size(-1)))
    return torch.argmax(torch.log(weights.double()) + gumbel, dim=-1)


# ----------------------------------------------------------------------------- logprobs


def attach_logprobs(
    logits_output: LogitsProcessorOutput,
    logprobs: torch.Tensor,
    next_ids: torch.Tensor,
    top_logprobs_nums: List[int],
    token_ids_logprobs: List[Optional[List[int]]],
) -> None:
    rows = torch.arange(next_ids.size(0), device=next_ids.device)
    logits_output.next_token_logprobs = logprobs[rows, next_ids.long()]
    if top_logprobs_nums and any(n > 0 for n in top_logprobs_nums):
        values, indices = logprobs.topk(max(top_logprobs_nums), dim=-1)
        values, indices = values.tolist(), indices.tolist()
        logits_output.next_token_top_logprobs_val = [
            v[:n] for v, n in zip(values, top_logprobs_nums)
        ]
        logits_output.next_token_top_logprobs_idx = [
            i[:n] for i, n in zip(indices, top_logprobs_nums)
        ]
    if token_ids_logprobs and any(ids is not None for ids in token_ids_logprobs):
        vals, idxs = [], []
        for row, ids in enumerate(token_ids_logprobs):
            vals.append(None if ids is None else logprobs[row, ids].tolist())
            idxs.append(None if ids is None else list(ids))
        logits_output.next_token_token_ids_logprobs_val = vals
        logits_output.next_token_token_ids_logprobs_idx = idxs
