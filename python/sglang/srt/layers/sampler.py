"""Turn next-token logits into token ids (and logprobs) for a batch of requests.

The path a batch takes, top to bottom in Sampler.forward:

1. Checks (sampler_inputs.py): every per-row argument has one entry per logits row,
   else ValueError. With SGLANG_ENABLE_NAN_DETECTION, NaN / +inf logits are reported
   (a warning; ValueError in CI, SGLANG_IS_IN_CI) at the cost of one host sync.
2. Divide by each row's temperature (greedy rows: 1) in float32 and sanitise: +inf
   becomes the largest float32, NaN and -inf the most negative, always, without a
   host sync, so every row is a proper distribution.
3. All requests greedy -> argmax. Otherwise softmax and sample with the batch's filters:
   - no top-k / top-p / min-p: plain categorical sampling;
   - min-p: top-k renorm, top-p renorm (each only if some row uses it), min-p sampling;
   - otherwise: joint top-k / top-p sampling.
   Greedy rows of a mixed batch take the argmax.
4. Logprobs, if asked: of the temperature-scaled distribution, for the sampled token,
   the top-N tokens per request, and requested token ids.

Backends: "flashinfer" runs FlashInfer's sorting-free kernels as sgl_kernel ops (on
MUSA from this tree's MUSA build, imported in the is_musa() branch below);
"pytorch" sorts each row. The default is "flashinfer" whenever the kernels are
available for the logits' device (CUDA or MUSA), else "pytorch"; choose with
Sampler(sampling_backend=...) or SGLANG_SAMPLING_BACKEND.

Requests with a sampling_seed draw from a counter-based generator keyed by (seed,
position, token id), so the same seed and position give the same token on every
backend; the kernels draw from the device generator and cannot do that, so a batch
with seeds is sampled by the pytorch path whatever the backend.
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
    # Moore Threads GPUs: FlashInfer's sampling kernels from sgl-kernel's MUSA build.
    from sgl_kernel import (
        min_p_sampling_from_probs,
        sampling_from_probs,
        top_k_renorm_prob,
        top_k_top_p_sampling_from_probs,
        top_p_renorm_prob,
    )

    KERNELS_UNAVAILABLE_REASON: Optional[str] = None
else:
    try:
        from sgl_kernel import (
            min_p_sampling_from_probs,
            sampling_from_probs,
            top_k_renorm_prob,
            top_k_top_p_sampling_from_probs,
            top_p_renorm_prob,
        )

        KERNELS_UNAVAILABLE_REASON = None
    except ImportError as err:
        KERNELS_UNAVAILABLE_REASON = f"sgl_kernel's sampling ops are not available: {err}"


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

        # Everything below reads `scaled`: float32, finite. Greedy rows carry temperature
        # 1, so an all-greedy batch skips the division.
        if sampling_info.is_all_greedy:
            scaled = sanitize_logits(logits, owned=False)
            next_ids = torch.argmax(scaled, dim=-1)
        else:
            scaled = sanitize_logits(logits / sampling_info.temperatures, owned=True)
            probs = torch.softmax(scaled, dim=-1)
            next_ids = self._sample(probs, sampling_info, positions)
            if sampling_info.has_greedy:
                greedy = sampling_info.top_ks == 1
                next_ids = torch.where(greedy, torch.argmax(scaled, dim=-1), next_ids.long())
        next_ids = next_ids.to(torch.int32)

        if return_logprob:
            logprobs = torch.log_softmax(scaled, dim=-1)
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

    def _sample(self, probs, info: SamplingBatchInfo, positions) -> torch.Tensor:
        seeds = info.sampling_seed
        if seeds is not None and positions is None:
            raise ValueError("Sampler.forward needs positions when a request sets sampling_seed")
        if self._backend_for(probs.device) == "pytorch":
            return top_k_top_p_min_p_sampling_from_probs_torch(
                probs,
                info.top_ks,
                info.top_ps,
                info.min_ps,
                info.need_min_p_sampling,
                seeds,
                positions,
            )
        ids = self._sample_with_kernels(probs, info)
        if seeds is None:
            return ids
        # Seeded requests draw by (seed, position, token id) on every backend. Only their
        # rows take the sort-based path, so one seeded request no longer sends the whole
        # batch there; their batch-mates keep the kernels.
        rows = info.seeded_rows
        if rows is None:
            rows = torch.arange(probs.size(0), device=probs.device)
        seeded = top_k_top_p_min_p_sampling_from_probs_torch(
            probs[rows],
            info.top_ks[rows],
            info.top_ps[rows],
            info.min_ps[rows],
            info.need_min_p_sampling,
            seeds[rows],
            positions[rows],
        )
        return ids.long().index_copy(0, rows, seeded)

    @staticmethod
    def _sample_with_kernels(probs, info: SamplingBatchInfo) -> torch.Tensor:
        if not (info.need_top_k_sampling or info.need_top_p_sampling or info.need_min_p_sampling):
            return sampling_from_probs(probs)
        if info.need_min_p_sampling:
            if info.need_top_k_sampling:
                probs = top_k_renorm_prob(probs, info.top_ks)
            if info.need_top_p_sampling:
                probs = top_p_renorm_prob(probs, info.top_ps)
            return min_p_sampling_from_probs(probs, info.min_ps)
        return top_k_top_p_sampling_from_probs(
            probs, info.top_ks, info.top_ps, filter_apply_order="joint"
        )


# ----------------------------------------------------------------------------- pytorch path


def top_k_top_p_min_p_sampling_from_probs_torch(
    probs: torch.Tensor,
    top_ks: torch.Tensor,
    top_ps: torch.Tensor,
    min_ps: torch.Tensor,
    need_min_p_sampling: bool,
    sampling_seed: Optional[torch.Tensor] = None,
    positions: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Sort-based sampling: cut each sorted row by top-k, top-p and min-p, then draw.

    A row keeps its k most likely tokens (ties cut in token-id order), the shortest prefix
    whose mass reaches p, and tokens of at least min_p times the row's top probability.
    NaN counts as probability 0; a row with nothing left samples token 0, as the
    kernels do. With sampling_seed, draws are keyed by (seed, position, token id).
    """
    # Stable: ties are cut in token-id order, the same on every device.
    sorted_p, order = torch.nan_to_num(probs, nan=0.0).sort(dim=-1, descending=True, stable=True)
    ranks = torch.arange(probs.size(-1), device=probs.device).view(1, -1)
    cut = ranks >= top_ks.view(-1, 1)
    cut |= (sorted_p.cumsum(dim=-1) - sorted_p) > top_ps.view(-1, 1)
    if need_min_p_sampling:
        cut |= sorted_p < sorted_p[:, :1] * min_ps.view(-1, 1)
    sorted_p = sorted_p.masked_fill(cut, 0.0)
    empty = sorted_p.sum(dim=-1) <= 0
    sorted_p[:, 0] = torch.where(empty, 1.0, sorted_p[:, 0])  # something to draw from

    if sampling_seed is None:
        picked = torch.gather(order, 1, torch.multinomial(sorted_p, 1)).view(-1)
    else:
        kept = torch.zeros_like(sorted_p).scatter_(1, order, sorted_p)
        picked = seeded_categorical(kept, sampling_seed, positions)
    return torch.where(empty, torch.zeros_like(picked), picked)


# Odd 64-bit constants (as signed int64) of a splitmix64-style mixer.
_MIX_SEED, _MIX_POS, _MIX_TOKEN = -7046029254386353131, -3335678366873096957, 7640891576956012809
_MIX_1, _MIX_2 = -4658895280553007687, -7723592293110705685


def _logical_shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    # torch's >> on int64 is arithmetic; mask off the copied sign bits.
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def seeded_uniform(seeds: torch.Tensor, positions: torch.Tensor, vocab: int) -> torch.Tensor:
    """[bs, vocab] float64 uniforms in (0, 1), a pure function of (seed, position, token id).

    Integer arithmetic wraps identically on every device, so the draws do not depend on
    the device or on the other requests of the batch.
    """
    tokens = torch.arange(vocab, device=seeds.device, dtype=torch.int64).view(1, -1)
    x = seeds.view(-1, 1) * _MIX_SEED + positions.view(-1, 1).to(torch.int64) * _MIX_POS
    x = x + tokens * _MIX_TOKEN
    x = (x ^ _logical_shift_right(x, 30)) * _MIX_1
    x = (x ^ _logical_shift_right(x, 27)) * _MIX_2
    x = x ^ _logical_shift_right(x, 31)
    return (_logical_shift_right(x, 11).double() + 0.5) / float(1 << 53)


def seeded_categorical(
    weights: torch.Tensor, seeds: torch.Tensor, positions: torch.Tensor
) -> torch.Tensor:
    """One draw per row proportional to weights (Gumbel-max with seeded uniforms)."""
    gumbel = -torch.log(-torch.log(seeded_uniform(seeds, positions, weights.size(-1))))
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
