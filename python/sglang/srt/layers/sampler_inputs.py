"""What the Sampler accepts: batch-size checks of its arguments, and non-finite logits.

Checks here read shapes, lengths and Python lists only: no host sync, except
report_non_finite(), which runs only with SGLANG_ENABLE_NAN_DETECTION.

Non-finite logits. sanitize_logits() replaces, in the temperature-scaled float32
logits that everything downstream reads (argmax, softmax, logprobs):

    +inf        -> FLOAT32_MAX   (the most likely token; several share the mass equally)
    -inf, NaN   -> -FLOAT32_MAX  (never chosen while the row holds any other value)

Sanitising after the division by the temperature (>= 1e-6 for sampled rows, 1 for
greedy ones) also catches finite logits that the division overflows: they become
+-FLOAT32_MAX and keep their order against every realistic logit. With every value
finite, softmax subtracts a finite row maximum, so no NaN can arise: each row is a
proper distribution. Resulting tokens, the same on every device (argmax returns the
first of equal maxima on CPU and GPU):

- a row with +inf logits: greedy takes the first +inf token; sampling picks uniformly
  among the +inf tokens;
- NaN and -inf tokens are never chosen while the row holds a finite or +inf logit;
- a row holding only NaN / -inf: greedy takes token 0, sampling picks uniformly over
  the whole row (every entry ties at -FLOAT32_MAX);
- logprobs of NaN / -inf tokens are -inf or about -3.4e38 (not NaN).
"""

from __future__ import annotations

import logging
import numbers
from typing import List, Optional

import torch

from sglang.srt.sampling.sampling_batch_info import SamplingBatchInfo
from sglang.srt.utils import crash_on_warnings

logger = logging.getLogger(__name__)

FLOAT32_MAX = torch.finfo(torch.float32).max


def sanitize_logits(x: torch.Tensor, owned: bool) -> torch.Tensor:
    """x as float32 with its non-finite entries replaced (see the module docstring). In
    place when x is float32 and `owned` (a temporary of the caller's), else a new
    tensor: the caller's logits are not modified. One elementwise pass, no host sync."""
    if x.dtype != torch.float32:
        x, owned = x.float(), True
    if owned:
        return x.nan_to_num_(nan=-FLOAT32_MAX, posinf=FLOAT32_MAX, neginf=-FLOAT32_MAX)
    return torch.nan_to_num(x, nan=-FLOAT32_MAX, posinf=FLOAT32_MAX, neginf=-FLOAT32_MAX)


def report_non_finite(logits: torch.Tensor) -> None:
    """Warn (raise ValueError in CI) when the logits hold NaN or +inf, or a row has no
    logit above -inf. One host sync.

    -inf next to finite logits is not reported: it is how a token is banned (grammar
    masks, logit bias), and sanitising keeps it impossible to sample.
    """
    per_row = torch.stack(
        [
            torch.isnan(logits).sum(dim=-1),
            torch.isposinf(logits).sum(dim=-1),
            (~(logits > float("-inf")).any(dim=-1)).long(),  # nothing but -inf / NaN
        ],
        dim=1,
    ).tolist()
    nan = sum(r[0] for r in per_row)
    posinf = sum(r[1] for r in per_row)
    dead = sum(r[2] for r in per_row)
    if not (nan or posinf or dead):
        return
    rows = [i for i, r in enumerate(per_row) if any(r)]
    message = (
        f"Detected errors during sampling! The logits hold {nan} NaN, {posinf} +inf and "
        f"{dead} rows with no logit above -inf (rows {rows[:16]}"
        f"{' ...' if len(rows) > 16 else ''}); sampled with them sanitised"
    )
    logger.warning(message)
    if crash_on_warnings():
        raise ValueError(message)


def check_batch(
    logits: torch.Tensor,
    info: SamplingBatchInfo,
    top_logprobs_nums: Optional[List[int]],
    token_ids_logprobs: Optional[List[Optional[List[int]]]],
    positions: Optional[torch.Tensor],
) -> None:
    """ValueError naming the argument unless everything has one entry per logits row.

    Without it a SamplingBatchInfo of 1 row broadcasts its parameters over 4 logits
    rows, a short top_logprobs_nums silently drops rows, and an out-of-range token id
    trips a device-side assert (which kills the process on a GPU).
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.size(1) == 0:
        shape = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"next_token_logits must be a 2-D [batch, vocab>=1] tensor, got {shape}")
    bs, vocab = logits.shape
    info.check_batch(bs, logits.device)

    # Every decode step passes these lists: the plain-int case is checked at C speed (a
    # per-entry numbers.Integral check cost 95 us per call at 256 rows), anything else
    # entry by entry, which also names the bad one.
    if top_logprobs_nums is not None:
        _check_length("top_logprobs_nums", top_logprobs_nums, bs)
        if not _plain_ints_within(top_logprobs_nums, 0, vocab):
            for i, n in enumerate(top_logprobs_nums):
                if not _is_int(n) or not 0 <= n <= vocab:
                    raise ValueError(
                        f"top_logprobs_nums[{i}] must be an integer in [0, {vocab}] (vocab "
                        f"size), got {n!r}"
                    )
    if token_ids_logprobs is not None:
        _check_length("token_ids_logprobs", token_ids_logprobs, bs)
        if token_ids_logprobs.count(None) != bs:
            for i, ids in enumerate(token_ids_logprobs):
                if ids is None or _plain_ints_within(ids, 0, vocab - 1):
                    continue
                for t in ids:
                    if not _is_int(t) or not 0 <= t < vocab:
                        raise ValueError(
                            f"token_ids_logprobs[{i}] must be None or token ids in [0, {vocab}), "
                            f"got {t!r}"
                        )
    if positions is not None:
        if not isinstance(positions, torch.Tensor) or positions.shape != (bs,):
            shape = list(positions.shape) if isinstance(positions, torch.Tensor) else positions
            raise ValueError(
                f"positions must be a tensor of shape [{bs}] (one per row), got {shape}"
            )
        if positions.dtype not in _INTEGER_DTYPES:
            raise ValueError(f"positions must be an integer tensor, got {positions.dtype}")
        if positions.device != logits.device:
            raise ValueError(f"positions is on {positions.device}, the logits on {logits.device}")


_INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _plain_ints_within(values, low: int, high: int) -> bool:
    """Whether every value is a plain int in [low, high] (False does not mean invalid:
    numpy integers, for instance, take the entry-by-entry check)."""
    if not isinstance(values, (list, tuple)):
        return False
    return not values or (
        set(map(type, values)) == {int} and low <= min(values) and max(values) <= high
    )


def _check_length(name: str, values, bs: int) -> None:
    if not isinstance(values, (list, tuple)) or len(values) != bs:
        got = len(values) if isinstance(values, (list, tuple)) else type(values).__name__
        raise ValueError(
            f"{name} must be a list with one entry per logits row ({bs}), or None; got {got}"
        )
