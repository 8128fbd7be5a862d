"""Torch-native reference of every sgl_kernel sampling op, and the ops' validation.

Each public op function here has exactly its op's schema, validates like the GPU
binding (same messages) and writes its output in place. They are registered as the
ops' CPU kernels (so the whole API runs on CPU tensors) and are the oracle that
the GPU tests compare against; they run on any device. ``VALIDATORS`` holds the
argument checks alone: the fake (meta) kernels run them, so a bad call fails the
same way under torch.compile or on meta tensors.

The contract (the FlashInfer 0.5.3 kernels with our patches compute the same):

* Weights: NaN and negative entries weigh 0, others their value. Rows need not sum
  to 1: S is the row's total weight. A row whose total is not a normal float32 (all
  zero, NaN or negative; only subnormals; a +inf entry; a sum past the float32
  range) is invalid and weighs 0 everywhere.
* top-k:  token i is kept iff w_i > 0 and fewer than k tokens have a larger weight
          (ties at the pivot are kept, unlike a sort-and-cut path).
* top-p:  token i is kept iff w_i > 0 and the tokens of larger weight hold less than
          p * S (p >= 1 keeps every positive token).
* min-p:  token i is kept iff w_i > 0 and w_i >= min_p * max_j w_j.
* joint:  kept by both top-k and top-p on the original row.

Sampling draws from the kept tokens in proportion to their weight. An invalid row
samples token 0; its renormalised row is all zero. top_k_mask_logits
orders logits (+inf largest, NaN never kept) and sets the others to -inf.

Per-row parameter arrays are clamped, never rejected (a range check would cost the GPU
a host sync): k < 1 acts as 1, p <= 0 or NaN keeps the most likely token(s), min_p goes
into [0, 1] with NaN acting as 1. Scalars are range-checked on every path.

The fused seeded op (top_k_top_p_min_p_sampling_from_probs, issue 9) has its own
definition, the pytorch backend's, given every value (no clamping); see
``fused_keep``, ``seeded_exponential``, ``fused_sample`` and docs/sampling.md.
"""

from __future__ import annotations

import math

import torch

# ----------------------------------------------------------------------------- checks
# Messages match csrc/sampling/sampling.cu word for word, so one test table serves both.


def _fail(op: str, message: str):
    raise RuntimeError(f"{op}: {message}")


def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _check_matrix(op: str, name: str, t: torch.Tensor) -> None:
    if t.dtype != torch.float32:
        _fail(op, f"{name} must be float32, got {_dtype_name(t.dtype)}")
    if t.dim() != 2:
        _fail(op, f"{name} must be 2-D (batch, vocab), got shape {_shape(t)}")
    if t.size(1) == 0:
        _fail(op, f"{name} must have vocab size >= 1, got shape {_shape(t)}")
    if not t.is_contiguous():
        _fail(op, f"{name} must be contiguous")


def _check_same_device(op: str, name: str, t: torch.Tensor, probs: torch.Tensor) -> None:
    if t.device != probs.device:
        _fail(
            op,
            f"{name} must be on the same device as the probabilities ({probs.device}), "
            f"got {t.device}",
        )


def _check_matrix_output(op: str, name: str, out: torch.Tensor, inp: torch.Tensor) -> None:
    _check_same_device(op, name, out, inp)
    if out.dtype != torch.float32:
        _fail(op, f"{name} must be float32, got {_dtype_name(out.dtype)}")
    if out.shape != inp.shape:
        _fail(op, f"{name} must have the input's shape {_shape(inp)}, got {_shape(out)}")
    if not out.is_contiguous():
        _fail(op, f"{name} must be contiguous")


def _check_vector(op, name, t, dtype, length, probs) -> None:
    _check_same_device(op, name, t, probs)
    if t.dtype != dtype:
        _fail(op, f"{name} must be {_dtype_name(dtype)}, got {_dtype_name(t.dtype)}")
    if t.dim() != 1 or t.size(0) != length:
        _fail(op, f"{name} must be 1-D of length {length}, got shape {_shape(t)}")
    if not t.is_contiguous():
        _fail(op, f"{name} must be contiguous")


def _check_top_k(op: str, k) -> None:
    # Any integer >= 1 is valid (values >= vocab keep everything): no overflow, whatever
    # its size, and an int and the float of the same value are judged alike.
    if isinstance(k, int) and not isinstance(k, bool):
        ok = k >= 1
    else:
        ok = math.isfinite(k) and k >= 1 and float(k).is_integer()
    if not ok:
        _fail(op, f"top_k_val must be an integer >= 1 (values >= vocab disable top-k), got {k:g}")


def _check_top_p(op: str, p: float) -> None:
    if not (0 < p <= 1):
        _fail(op, f"top_p_val must be in (0, 1], got {p:g}")


def _check_min_p(op: str, p: float) -> None:
    if not (0 <= p <= 1):
        _fail(op, f"min_p_val must be in [0, 1], got {p:g}")


def _check_row_param(op, name, arr, val, dtype, probs, check_scalar) -> None:
    if arr is not None:
        _check_vector(op, name, arr, dtype, probs.size(0), probs)
    else:
        check_scalar(op, val)


def _check_sampling_io(op, probs, output, maybe_indices, check_values) -> None:
    _check_matrix(op, "probs", probs)
    rows = probs.size(0)
    if maybe_indices is not None:
        idx = maybe_indices
        _check_same_device(op, "maybe_indices", idx, probs)
        if idx.dtype != torch.int32:
            _fail(op, f"maybe_indices must be int32, got {_dtype_name(idx.dtype)}")
        if idx.dim() != 1:
            _fail(op, f"maybe_indices must be 1-D, got shape {_shape(idx)}")
        if not idx.is_contiguous():
            _fail(op, "maybe_indices must be contiguous")
        rows = idx.size(0)
        if check_values and rows > 0:
            lo, hi = int(idx.min()), int(idx.max())
            if lo < 0 or hi >= probs.size(0):
                _fail(
                    op,
                    f"maybe_indices must lie in [0, {probs.size(0)}), got values in [{lo}, {hi}]",
                )
    _check_vector(op, "output", output, torch.int32, rows, probs)


FUSED_MAX_VOCAB = (1 << 20) - 1  # the fused op's largest vocabulary


def _validate_fused(
    probs, output, top_k, top_p, min_p, seeds, positions, check_values=True
) -> None:
    op = "top_k_top_p_min_p_sampling_from_probs"
    _check_matrix(op, "probs", probs)
    if probs.size(1) > FUSED_MAX_VOCAB:
        # The GPU kernel's histogram sums (12-bit mantissa halves in 32-bit counters) are
        # exact below 2^20 tokens; the reference has the same limit so that a call fails
        # alike on every device.
        _fail(
            op,
            "probs must have a vocab size below 2^20 (the kernel sums masses exactly in 32 bits), "
            f"got shape {_shape(probs)}",
        )
    _check_fused_vectors(op, probs, output, None, top_k, top_p, min_p, seeds, positions)


def _check_fused_vectors(op, x, output, temperature, top_k, top_p, min_p, seeds, positions):
    """The fused ops' per-row vectors, one entry per row of x (temperature: the from-logits
    op's; positions: optional there; None skips)."""
    for name, t, dtype in (
        ("output", output, torch.int32),
        ("temperature", temperature, torch.float32),
        ("top_k", top_k, torch.int32),
        ("top_p", top_p, torch.float32),
        ("min_p", min_p, torch.float32),
        ("seeds", seeds, torch.int64),
        ("positions", positions, torch.int64),
    ):
        if t is not None:
            _check_vector(op, name, t, dtype, x.size(0), x)


# One validator per op, with the op's schema plus `check_values` (False in the fakes,
# whose tensors hold no data). Only maybe_indices' range needs the values.
def _validate_renorm(op, names, arr_name, arr_dtype, check_scalar):
    """names: the (input, output) matrix names of the op's schema."""

    def validate(inp, out, maybe_arr, val, check_values=True) -> None:
        _check_matrix(op, names[0], inp)
        _check_matrix_output(op, names[1], out, inp)
        _check_row_param(op, arr_name, maybe_arr, val, arr_dtype, inp, check_scalar)

    return validate


def _validate_sampling(op, *params):
    """params: (array name, dtype, scalar check) per filter parameter, in schema order."""

    def validate(probs, output, maybe_indices, *args, check_values=True) -> None:
        _check_sampling_io(op, probs, output, maybe_indices, check_values)
        for (name, dtype, check_scalar), arr, val in zip(params, args[0::2], args[1::2]):
            _check_row_param(op, name, arr, val, dtype, probs, check_scalar)

    return validate


_TOP_K = ("maybe_top_k_arr", torch.int32, _check_top_k)
_TOP_P = ("maybe_top_p_arr", torch.float32, _check_top_p)
_MIN_P = ("maybe_min_p_arr", torch.float32, _check_min_p)
_RENORM = ("probs", "renorm_probs")

VALIDATORS = {
    "top_k_renorm_probs": _validate_renorm("top_k_renorm_probs", _RENORM, *_TOP_K),
    "top_p_renorm_probs": _validate_renorm("top_p_renorm_probs", _RENORM, *_TOP_P),
    "top_k_mask_logits": _validate_renorm("top_k_mask_logits", ("logits", "mask_logits"), *_TOP_K),
    "sampling_from_probs": _validate_sampling("sampling_from_probs"),
    "top_k_sampling_from_probs": _validate_sampling("top_k_sampling_from_probs", _TOP_K),
    "top_p_sampling_from_probs": _validate_sampling("top_p_sampling_from_probs", _TOP_P),
    "top_k_top_p_sampling_from_probs": _validate_sampling(
        "top_k_top_p_sampling_from_probs", _TOP_K, _TOP_P
    ),
    "min_p_sampling_from_probs": _validate_sampling("min_p_sampling_from_probs", _MIN_P),
    "top_k_top_p_min_p_sampling_from_probs": _validate_fused,
}


# ----------------------------------------------------------------------------- parameters
# Per-row values that could accept no token are clamped, as the kernels do
# (3rdparty/patches/0004); scalars were range-checked by the validators.


def _rows(arr, val, probs) -> torch.Tensor:
    if arr is not None:
        return arr.double()
    return torch.full((probs.size(0),), float(val), dtype=torch.float64, device=probs.device)


def top_k_rows(arr, val, probs) -> torch.Tensor:
    """k per row as float64 (exact below 2**53), clamped into [1, vocab]."""
    if arr is None and val >= probs.size(-1):
        val = probs.size(-1)  # k >= vocab keeps everything; clamping first avoids overflow
    return _rows(arr, val, probs).clamp(1, probs.size(-1))


def top_p_rows(arr, val, probs) -> torch.Tensor:
    p = _rows(arr, val, probs)
    return torch.where(p > 0, p.clamp_max(1), 1e-30)  # p <= 0 or NaN keeps the top token


def min_p_rows(arr, val, probs) -> torch.Tensor:
    return torch.nan_to_num(_rows(arr, val, probs), nan=1.0).clamp(0, 1)


# ----------------------------------------------------------------------------- masks


# A total below the smallest normal float32 (a row of subnormals) cannot be drawn from
# exactly in float32 (u * S falls on a few representable values): such rows are invalid.
_FLOAT32_NORMAL_MIN = torch.finfo(torch.float32).tiny


def weights(probs: torch.Tensor) -> torch.Tensor:
    """Each entry's weight: NaN and negatives weigh 0; an invalid row (no finite positive
    total, summed in float32 as the kernels do) weighs 0 everywhere."""
    w = torch.where(probs > 0, probs, 0.0)
    total = w.sum(dim=-1, keepdim=True)
    return torch.where((total >= _FLOAT32_NORMAL_MIN) & torch.isfinite(total), w, 0.0)


def greater_stats(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per element of a NaN-free matrix: how many entries of its row are strictly greater,
    and their sum (float64; 0 where that sum would be undefined, i.e. logits).

    Sorting the float32 values gives the exact order; only the running sum is float64.
    """
    ascending, _ = torch.sort(values, dim=-1)
    count_greater = values.size(-1) - torch.searchsorted(ascending, values.contiguous(), right=True)
    descending = torch.nan_to_num(ascending.flip(-1).double(), nan=0.0, posinf=0.0, neginf=0.0)
    csum = torch.cat(
        [torch.zeros_like(descending[:, :1]), torch.cumsum(descending, dim=-1)], dim=-1
    )
    return count_greater, torch.gather(csum, -1, count_greater)


def top_k_keep(probs: torch.Tensor, top_k: torch.Tensor, stats=None) -> torch.Tensor:
    """Keep mask of top-k over the weights of a (batch, vocab) matrix; ties kept."""
    w = weights(probs)
    count_greater, _ = stats or greater_stats(w)
    return (count_greater < top_k.view(-1, 1).double()) & (w > 0)


def top_p_keep(probs: torch.Tensor, top_p: torch.Tensor, stats=None) -> torch.Tensor:
    """Keep mask of top-p: the weight strictly above the token is below p * S."""
    w = weights(probs)
    _, sum_greater = stats or greater_stats(w)
    p = top_p.view(-1, 1).double()
    total = w.double().sum(dim=-1, keepdim=True)
    # p >= 1 keeps every token, as the kernels' fast path does, even when float
    # rounding puts the mass above a token at or over the total; the most likely token
    # (nothing above it) is kept even where p * total underflows.
    return ((sum_greater < p * total) | (p >= 1) | (sum_greater == 0)) & (w > 0)


def min_p_keep(probs: torch.Tensor, min_p: torch.Tensor) -> torch.Tensor:
    """Keep mask of min-p: weight at least min_p times the row's largest."""
    w = weights(probs).double()
    row_max = w.amax(dim=-1, keepdim=True)
    return (w >= min_p.view(-1, 1).double() * row_max) & (w > 0)


def top_k_logits_keep(logits: torch.Tensor, top_k: torch.Tensor) -> torch.Tensor:
    """Keep mask of top-k over logits: +inf is the largest value, NaN is never kept."""
    nan = logits.isnan()
    count_greater, _ = greater_stats(logits.masked_fill(nan, float("-inf")))
    return (count_greater < top_k.view(-1, 1).double()) & ~nan


def _renormalize(probs: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    kept = torch.where(keep, weights(probs).double(), 0.0)
    total = kept.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, kept / total.clamp_min(1e-300), 0.0).float()


def _sample(probs, keep, output, maybe_indices, gen) -> None:
    """Draw one token per output row from the kept, positive weights."""
    w = torch.where(keep, weights(probs).double(), 0.0)
    if maybe_indices is not None:
        w = w[maybe_indices.long()]
    empty = w.sum(dim=-1) <= 0
    w[empty, 0] = 1.0  # a row with nothing to draw samples token 0
    if w.size(0) > 0:
        drawn = torch.multinomial(w, 1, generator=gen).view(-1)
        output.copy_(drawn.to(torch.int32))


# ----------------------------------------------------------------------------- ops


def top_k_renorm_probs(probs, renorm_probs, maybe_top_k_arr, top_k_val) -> None:
    VALIDATORS["top_k_renorm_probs"](probs, renorm_probs, maybe_top_k_arr, top_k_val)
    k = top_k_rows(maybe_top_k_arr, top_k_val, probs)
    renorm_probs.copy_(_renormalize(probs, top_k_keep(probs, k)))


def top_p_renorm_probs(probs, renorm_probs, maybe_top_p_arr, top_p_val) -> None:
    VALIDATORS["top_p_renorm_probs"](probs, renorm_probs, maybe_top_p_arr, top_p_val)
    p = top_p_rows(maybe_top_p_arr, top_p_val, probs)
    renorm_probs.copy_(_renormalize(probs, top_p_keep(probs, p)))


def top_k_mask_logits(logits, mask_logits, maybe_top_k_arr, top_k_val) -> None:
    VALIDATORS["top_k_mask_logits"](logits, mask_logits, maybe_top_k_arr, top_k_val)
    k = top_k_rows(maybe_top_k_arr, top_k_val, logits)
    mask_logits.copy_(torch.where(top_k_logits_keep(logits, k), logits, float("-inf")))


def sampling_from_probs(probs, output, maybe_indices, deterministic, gen) -> None:
    VALIDATORS["sampling_from_probs"](probs, output, maybe_indices)
    _sample(probs, torch.ones_like(probs, dtype=torch.bool), output, maybe_indices, gen)


def top_k_sampling_from_probs(
    probs, output, maybe_indices, maybe_top_k_arr, top_k_val, deterministic, gen
) -> None:
    VALIDATORS["top_k_sampling_from_probs"](
        probs, output, maybe_indices, maybe_top_k_arr, top_k_val
    )
    k = top_k_rows(maybe_top_k_arr, top_k_val, probs)
    _sample(probs, top_k_keep(probs, k), output, maybe_indices, gen)


def top_p_sampling_from_probs(
    probs, output, maybe_indices, maybe_top_p_arr, top_p_val, deterministic, gen
) -> None:
    VALIDATORS["top_p_sampling_from_probs"](
        probs, output, maybe_indices, maybe_top_p_arr, top_p_val
    )
    p = top_p_rows(maybe_top_p_arr, top_p_val, probs)
    _sample(probs, top_p_keep(probs, p), output, maybe_indices, gen)


def top_k_top_p_sampling_from_probs(
    probs,
    output,
    maybe_indices,
    maybe_top_k_arr,
    top_k_val,
    maybe_top_p_arr,
    top_p_val,
    deterministic,
    gen,
) -> None:
    VALIDATORS["top_k_top_p_sampling_from_probs"](
        probs, output, maybe_indices, maybe_top_k_arr, top_k_val, maybe_top_p_arr, top_p_val
    )
    k = top_k_rows(maybe_top_k_arr, top_k_val, probs)
    p = top_p_rows(maybe_top_p_arr, top_p_val, probs)
    stats = greater_stats(weights(probs))
    _sample(
        probs, top_k_keep(probs, k, stats) & top_p_keep(probs, p, stats), output, maybe_indices, gen
    )


def min_p_sampling_from_probs(
    probs, output, maybe_indices, maybe_min_p_arr, min_p_val, deterministic, gen
) -> None:
    VALIDATORS["min_p_sampling_from_probs"](
        probs, output, maybe_indices, maybe_min_p_arr, min_p_val
    )
    m = min_p_rows(maybe_min_p_arr, min_p_val, probs)
    _sample(probs, min_p_keep(probs, m), output, maybe_indices, gen)


# ----------------------------------------------------------------------------- fused op
# The definition of docs/sampling.md ("The fused seeded op"), one for every row and every
# parameter value: nothing is clamped and nothing depends on the row's batch-mates.

# The row key's odd 64-bit constants (as signed int64: splitmix64-style), and the 32-bit
# constants of the per-token mixer.
_MIX_SEED, _MIX_POS = -7046029254386353131, -3335678366873096957
_MIX_1, _MIX_2 = -4658895280553007687, -7723592293110705685
_MIX_TOKEN, _MIX32_1, _MIX32_2 = 0x9E3779B9, 0x7FEB352D, 0x846CA68B
_U32 = 0xFFFFFFFF


def _logical_shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    # torch's >> on int64 is arithmetic; mask off the copied sign bits.
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit mixer (a bijection) on int64 tensors holding values below 2^32."""
    x = ((x ^ (x >> 16)) * _MIX32_1) & _U32
    x = ((x ^ (x >> 15)) * _MIX32_2) & _U32
    return x ^ (x >> 16)


def seeded_exponential(seeds: torch.Tensor, positions: torch.Tensor, vocab: int) -> torch.Tensor:
    """[bs, vocab] float64 E = -log(u) of the seeded uniforms u, a pure function of (seed,
    position, token id).

    The one definition of the seeded draw (the GPU kernels and the Sampler's pytorch
    backend use the same bits; int64 arithmetic wraps identically on every device):
    a row's 64-bit key is seed * C_seed + position * C_pos through the splitmix64
    finaliser; with a, b its low and high 32 bits and 32-bit wrapping arithmetic,
    high = mix32(((a + i * C_tok) mod 2^32) ^ b), low = mix32(high + b), and the 53 bits
    m = high * 2^21 + (low >> 11) give u = (2m + 1) / 2^54 in (0, 1). Per token the GPU
    needs only 32-bit operations, and `high` alone bounds the Gumbel variable, so the
    draw skips `low` and the logs for tokens that cannot win. The log's argument is exact
    in float64 on both halves: u itself below 1/2, and 1 - u = (2^54 - 2m - 1) / 2^54 (an
    integer below 2^53 over 2^54) above, through log1p, so E keeps its precision where it
    is small (u near 1, the likeliest winners).
    """
    tokens = torch.arange(vocab, device=seeds.device, dtype=torch.int64).view(1, -1)
    key = seeds.view(-1, 1) * _MIX_SEED + positions.view(-1, 1).to(torch.int64) * _MIX_POS
    key = (key ^ _logical_shift_right(key, 30)) * _MIX_1
    key = (key ^ _logical_shift_right(key, 27)) * _MIX_2
    key = key ^ _logical_shift_right(key, 31)
    a, b = key & _U32, _logical_shift_right(key, 32)
    high = _mix32(((a + tokens * _MIX_TOKEN) & _U32) ^ b)
    low = _mix32((high + b) & _U32)
    m = (high << 21) | (low >> 11)
    low_half = m < (1 << 52)
    u = (2 * m + 1).double() / float(1 << 54)
    one_minus_u = ((1 << 54) - 2 * m - 1).double() / float(1 << 54)
    return torch.where(low_half, -torch.log(u), -torch.log1p(-one_minus_u))


_FLOAT32_MAX = torch.finfo(torch.float32).max


def fused_weights(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(w, valid): w_i = probs_i where probs_i > 0, else 0 (NaN, negatives); a row is valid
    iff it holds no +inf and its total S is a normal float32 (FLT_MIN <= S <= FLT_MAX).

    S is summed in float64, exact but for rounding far below float32's resolution.
    """
    w = torch.where(probs > 0, probs, 0.0)
    total = w.double().sum(dim=-1)
    has_inf = (probs == float("inf")).any(dim=-1)
    valid = ~has_inf & (total >= _FLOAT32_NORMAL_MIN) & (total <= _FLOAT32_MAX)
    return w, valid


def fused_keep(
    probs: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor, min_p: torch.Tensor
) -> torch.Tensor:
    """[B, V] bool: the tokens each row may sample (a prefix of its rank order).

    Ranks: weight descending, ties by token id ascending. Kept iff w > 0, the row is
    valid, and none cuts: top-k (rank >= k), top-p (float64 mass of the lower ranks
    > p * S), min-p (w < float32(max w * min_p)). Any parameter value is defined: k <= 0
    and p < 0 cut everything, NaN p / min_p cut nothing, p >= 1 cuts nothing.
    """
    w, valid = fused_weights(probs)
    sorted_w, order = torch.sort(w, dim=-1, descending=True, stable=True)
    ranks = torch.arange(w.size(-1), device=w.device).view(1, -1)
    cut = ranks >= top_k.view(-1, 1).long()
    # Inclusive sums in rank order; S is their last entry, so a lower-ranks mass never
    # exceeds S by rounding (p >= 1 must cut nothing).
    inclusive = torch.cumsum(sorted_w.double(), dim=-1)
    above = inclusive - sorted_w.double()
    total = inclusive[:, -1:]
    p = top_p.view(-1, 1).double()
    cut |= (above > p * total) & ~(p >= 1)
    threshold = w.amax(dim=-1, keepdim=True) * min_p.view(-1, 1)  # float32 product
    cut |= sorted_w < threshold
    sorted_keep = ~cut & (sorted_w > 0) & valid.view(-1, 1)
    return torch.zeros_like(sorted_keep).scatter_(1, order, sorted_keep)


def fused_sample(
    probs: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    min_p: torch.Tensor,
    seeds: torch.Tensor,
    positions: torch.Tensor,
) -> torch.Tensor:
    """int64 [B]: argmax over kept i of log(w_i) - log(E_i) (Gumbel-max, float64),
    E = seeded_exponential(seed, position, i); exact ties to the lower id; nothing kept -> 0."""
    keep = fused_keep(probs, top_k, top_p, min_p)
    if probs.size(0) == 0:
        return torch.zeros(0, dtype=torch.int64, device=probs.device)
    e = seeded_exponential(seeds, positions, probs.size(-1))
    key = torch.log(probs.double().clamp_min(0)) - torch.log(e)
    key = torch.where(keep, key, float("-inf"))
    token = torch.argmax(key, dim=-1)  # the first maximum: ties go to the lower id
    return torch.where(keep.any(dim=-1), token, 0)


def top_k_top_p_min_p_sampling_from_probs(
    probs, output, top_k, top_p, min_p, seeds, positions
) -> None:
    VALIDATORS["top_k_top_p_min_p_sampling_from_probs"](
        probs, output, top_k, top_p, min_p, seeds, positions
    )
    output.copy_(fused_sample(probs, top_k, top_p, min_p, seeds, positions).to(torch.int32))


# ----------------------------------------------------------------------------- from logits
# top_k_top_p_min_p_sampling_from_logits (issue 16): docs/sampling.md, "From logits".

_LOGIT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _validate_from_logits(
    logits, output, temperature, top_k, top_p, min_p, seeds, positions, check_values=True
) -> None:
    op = "top_k_top_p_min_p_sampling_from_logits"
    if logits.dtype not in _LOGIT_DTYPES:
        _fail(op, f"logits must be float32, float16 or bfloat16, got {_dtype_name(logits.dtype)}")
    if logits.dim() != 2:
        _fail(op, f"logits must be 2-D (batch, vocab), got shape {_shape(logits)}")
    if not 0 < logits.size(1) <= FUSED_MAX_VOCAB:
        _fail(
            op,
            "logits must have a vocab size in [1, 2^20) (the kernel sums masses exactly in 32 "
            f"bits), got shape {_shape(logits)}",
        )
    _check_fused_vectors(op, logits, output, temperature, top_k, top_p, min_p, seeds, positions)


def scaled_logits(logits: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """float32 s = logits * float32(1 / temperature), NaN and -inf -> -FLOAT32_MAX, +inf ->
    FLOAT32_MAX; rows with temperature <= 0 or NaN (greedy) are not scaled. The product and
    the reciprocal round once each in float32, so every device computes the same s."""
    t = temperature.view(-1, 1)
    inverse = torch.where(t > 0, 1.0 / t, torch.ones_like(t))
    s = logits.float() * inverse
    return torch.nan_to_num(s, nan=-_FLOAT32_MAX, posinf=_FLOAT32_MAX, neginf=-_FLOAT32_MAX)


def logit_weights(s: torch.Tensor) -> torch.Tensor:
    """float32 w = exp(s - max s) per row: the probabilities (up to the row's total) that
    the filters see; 1 at the maximum, so every row is valid."""
    return torch.exp(s - s.amax(dim=-1, keepdim=True))


def from_logits_sample(logits, temperature, top_k, top_p, min_p, seeds, positions) -> torch.Tensor:
    """int64 [B]: greedy rows (temperature <= 0 or NaN) and top_k == 1 rows take the argmax
    of s (the first maximum; top_k == 1 keeps it unless top_p < 0 or min_p > 1: token 0);
    the others the fused op's kept set over w, drawn by the Gumbel-max of
    (s - max s) - log(E), E = seeded_exponential(seed, position, id); nothing kept: 0.
    A filter None cuts no row."""
    s = scaled_logits(logits, temperature)
    rows = s.size(0)
    off = lambda value, dtype: torch.full((rows,), value, dtype=dtype, device=s.device)  # noqa: E731
    top_k = off(torch.iinfo(torch.int32).max, torch.int32) if top_k is None else top_k
    top_p = off(1.0, torch.float32) if top_p is None else top_p
    min_p = off(0.0, torch.float32) if min_p is None else min_p
    if positions is None:
        positions = torch.zeros(rows, dtype=torch.int64, device=s.device)
    greedy_token = torch.argmax(s, dim=-1)  # the first maximum: ties to the lower id
    d = s - s.amax(dim=-1, keepdim=True)
    keep = fused_keep(torch.exp(d), top_k, top_p, min_p)
    key = d.double() - torch.log(seeded_exponential(seeds, positions, s.size(-1)))
    key = torch.where(keep, key, float("-inf"))
    token = torch.where(keep.any(dim=-1), torch.argmax(key, dim=-1), 0)
    sampled = temperature > 0  # NaN: greedy
    top1_kept = ~(top_p < 0) & ~(min_p > 1)
    top1 = torch.where(top1_kept, greedy_token, 0)
    token = torch.where(top_k == 1, top1, token)
    return torch.where(sampled, token, greedy_token)


def top_k_top_p_min_p_sampling_from_logits(
    logits, output, temperature, top_k, top_p, min_p, seeds, positions
) -> None:
    _validate_from_logits(logits, output, temperature, top_k, top_p, min_p, seeds, positions)
    if logits.size(0) == 0:
        return
    token = from_logits_sample(logits, temperature, top_k, top_p, min_p, seeds, positions)
    output.copy_(token.to(torch.int32))


VALIDATORS["top_k_top_p_min_p_sampling_from_logits"] = _validate_from_logits


# Every op of the library, in schema order; registration and tests iterate this.
OPS = {
    "top_k_renorm_probs": top_k_renorm_probs,
    "top_p_renorm_probs": top_p_renorm_probs,
    "top_k_mask_logits": top_k_mask_logits,
    "sampling_from_probs": sampling_from_probs,
    "top_k_sampling_from_probs": top_k_sampling_from_probs,
    "top_p_sampling_from_probs": top_p_sampling_from_probs,
    "top_k_top_p_sampling_from_probs": top_k_top_p_sampling_from_probs,
    "min_p_sampling_from_probs": min_p_sampling_from_probs,
    "top_k_top_p_min_p_sampling_from_probs": top_k_top_p_min_p_sampling_from_probs,
    "top_k_top_p_min_p_sampling_from_logits": top_k_top_p_min_p_sampling_from_logits,
}
