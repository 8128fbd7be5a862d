"""Torch-native reference of every sgl_kernel sampling op.

Each public op function here has exactly its op's schema, validates like the GPU
binding (same messages) and writes its output in place. They are registered as the
ops' CPU kernels (so the whole API runs on CPU tensors) and are the oracle that
the GPU tests compare against; they run on any device.

Which tokens each filter keeps (the FlashInfer 0.5.3 kernels' rule, ties at the
pivot kept, unlike a sort-and-cut path):

* top-k:  token i is kept iff fewer than k tokens are strictly more likely.
* top-p:  token i is kept iff the tokens strictly more likely than i hold less
          than p of the mass.
* min-p:  token i is kept iff p_i >= min_p * max_j p_j.
* joint:  kept by both top-k and top-p.

Sampling draws from the kept tokens in proportion to their probability; tokens of
probability 0 (or NaN) are never drawn. A row with no positive probability (all
zero or all NaN) samples token 0; its renormalised row is all zero, and its masked
logits are all -inf when every logit is NaN.
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


def _check_top_k(op: str, k: float) -> None:
    if not (k >= 1 and float(k) == math.floor(k)):
        _fail(op, f"top_k_val must be an integer >= 1 (values >= vocab disable top-k), got {k:g}")


def _check_top_p(op: str, p: float) -> None:
    if not (0 < p <= 1):
        _fail(op, f"top_p_val must be in (0, 1], got {p:g}")


def _check_min_p(op: str, p: float) -> None:
    if not (0 <= p <= 1):
        _fail(op, f"min_p_val must be in [0, 1], got {p:g}")


def _row_param(op, name, arr, val, dtype, probs, check_scalar) -> torch.Tensor:
    """The per-row parameter as a tensor of length batch, from the array or the scalar."""
    if arr is not None:
        _check_vector(op, name, arr, dtype, probs.size(0), probs)
        return arr
    check_scalar(op, val)
    return torch.full((probs.size(0),), val, dtype=torch.float64, device=probs.device)


# Per-row arrays are not range-checked (on the GPU that would cost a sync); values that
# could accept no token are clamped, as the kernels do (3rdparty/patches/0004).
def _top_k_rows(op, arr, val, probs) -> torch.Tensor:
    k = _row_param(op, "maybe_top_k_arr", arr, val, torch.int32, probs, _check_top_k)
    return k.clamp_min(1)  # k < 1 acts as 1


def _top_p_rows(op, arr, val, probs) -> torch.Tensor:
    p = _row_param(op, "maybe_top_p_arr", arr, val, torch.float32, probs, _check_top_p)
    return torch.where(p > 0, p, 1e-30)  # p <= 0 or NaN keeps the top token


def _min_p_rows(op, arr, val, probs) -> torch.Tensor:
    m = _row_param(op, "maybe_min_p_arr", arr, val, torch.float32, probs, _check_min_p)
    return torch.nan_to_num(m, nan=1.0).clamp(0, 1)  # NaN keeps the top token


def _check_sampling_io(op, probs, output, maybe_indices) -> None:
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
        if rows > 0:
            lo, hi = int(idx.min()), int(idx.max())
            if lo < 0 or hi >= probs.size(0):
                _fail(
                    op,
                    f"maybe_indices must lie in [0, {probs.size(0)}), got values in [{lo}, {hi}]",
                )
    _check_vector(op, "output", output, torch.int32, rows, probs)


# ----------------------------------------------------------------------------- masks


def greater_stats(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per element: how many entries of its row are strictly greater, and their sum.

    Sorting the float32 values gives the exact order; only the running sum is float64.
    """
    ascending, _ = torch.sort(values, dim=-1)
    count_greater = values.size(-1) - torch.searchsorted(ascending, values.contiguous(), right=True)
    descending = torch.nan_to_num(ascending.flip(-1).double(), nan=0.0)
    csum = torch.cat(
        [torch.zeros_like(descending[:, :1]), torch.cumsum(descending, dim=-1)], dim=-1
    )
    return count_greater, torch.gather(csum, -1, count_greater)


def top_k_keep(values: torch.Tensor, top_k: torch.Tensor, stats=None) -> torch.Tensor:
    """Keep mask of top-k over a (batch, vocab) matrix; ties at the k-th value are kept."""
    count_greater, _ = stats or greater_stats(values)
    return (count_greater < top_k.view(-1, 1).to(count_greater.dtype)) & ~values.isnan()


def top_p_keep(probs: torch.Tensor, top_p: torch.Tensor, stats=None) -> torch.Tensor:
    """Keep mask of top-p: the mass strictly above the token is below p."""
    _, sum_greater = stats or greater_stats(probs)
    p = top_p.view(-1, 1).double()
    # p >= 1 keeps every token, as the kernels' fast path does, even when float
    # rounding puts the mass above a token at or over 1.
    return ((sum_greater < p) | (p >= 1)) & (probs > 0)


def min_p_keep(probs: torch.Tensor, min_p: torch.Tensor) -> torch.Tensor:
    """Keep mask of min-p: probability at least min_p times the row's largest."""
    row_max = torch.nan_to_num(probs, nan=0.0).amax(dim=-1, keepdim=True).double()
    return (probs.double() >= min_p.view(-1, 1).double() * row_max) & (probs > 0)


def _renormalize(probs: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    kept = torch.where(keep & (probs > 0), probs.double(), 0.0)
    total = kept.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, kept / total.clamp_min(1e-300), 0.0).float()


def _sample(probs, keep, output, maybe_indices, gen) -> None:
    """Draw one token per output row from the kept, positive probabilities."""
    weights = torch.where(keep & (probs > 0), probs.double(), 0.0)
    if maybe_indices is not None:
        weights = weights[maybe_indices.long()]
    empty = weights.sum(dim=-1) <= 0
    weights[empty, 0] = 1.0  # a row with nothing to draw samples token 0
    if weights.size(0) > 0:
        drawn = torch.multinomial(weights, 1, generator=gen).view(-1)
        output.copy_(drawn.to(torch.int32))


# ----------------------------------------------------------------------------- ops


def top_k_renorm_probs(probs, renorm_probs, maybe_top_k_arr, top_k_val) -> None:
    op = "top_k_renorm_probs"
    _check_matrix(op, "probs", probs)
    _check_matrix_output(op, "renorm_probs", renorm_probs, probs)
    k = _top_k_rows(op, maybe_top_k_arr, top_k_val, probs)
    renorm_probs.copy_(_renormalize(probs, top_k_keep(probs, k)))


def top_p_renorm_probs(probs, renorm_probs, maybe_top_p_arr, top_p_val) -> None:
    op = "top_p_renorm_probs"
    _check_matrix(op, "probs", probs)
    _check_matrix_output(op, "renorm_probs", renorm_probs, probs)
    p = _top_p_rows(op, maybe_top_p_arr, top_p_val, probs)
    renorm_probs.copy_(_renormalize(probs, top_p_keep(probs, p)))


def top_k_mask_logits(logits, mask_logits, maybe_top_k_arr, top_k_val) -> None:
    op = "top_k_mask_logits"
    _check_matrix(op, "logits", logits)
    _check_matrix_output(op, "mask_logits", mask_logits, logits)
    k = _top_k_rows(op, maybe_top_k_arr, top_k_val, logits)
    mask_logits.copy_(torch.where(top_k_keep(logits, k), logits, float("-inf")))


def sampling_from_probs(probs, output, maybe_indices, deterministic, gen) -> None:
    _check_sampling_io("sampling_from_probs", probs, output, maybe_indices)
    _sample(probs, torch.ones_like(probs, dtype=torch.bool), output, maybe_indices, gen)


def top_k_sampling_from_probs(
    probs, output, maybe_indices, maybe_top_k_arr, top_k_val, deterministic, gen
) -> None:
    op = "top_k_sampling_from_probs"
    _check_sampling_io(op, probs, output, maybe_indices)
    k = _top_k_rows(op, maybe_top_k_arr, top_k_val, probs)
    _sample(probs, top_k_keep(probs, k), output, maybe_indices, gen)


def top_p_sampling_from_probs(
    probs, output, maybe_indices, maybe_top_p_arr, top_p_val, deterministic, gen
) -> None:
    op = "top_p_sampling_from_probs"
    _check_sampling_io(op, probs, output, maybe_indices)
    p = _top_p_rows(op, maybe_top_p_arr, top_p_val, probs)
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
    op = "top_k_top_p_sampling_from_probs"
    _check_sampling_io(op, probs, output, maybe_indices)
    k = _top_k_rows(op, maybe_top_k_arr, top_k_val, probs)
    p = _top_p_rows(op, maybe_top_p_arr, top_p_val, probs)
    stats = greater_stats(probs)
    _sample(
        probs, top_k_keep(probs, k, stats) & top_p_keep(probs, p, stats), output, maybe_indices, gen
    )


def min_p_sampling_from_probs(
    probs, output, maybe_indices, maybe_min_p_arr, min_p_val, deterministic, gen
) -> None:
    op = "min_p_sampling_from_probs"
    _check_sampling_io(op, probs, output, maybe_indices)
    m = _min_p_rows(op, maybe_min_p_arr, min_p_val, probs)
    _sample(probs, min_p_keep(probs, m), output, maybe_indices, gen)


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
}
