"""FlashInfer-compatible sampling functions over the ``torch.ops.sgl_kernel`` ops.

These wrappers honour FlashInfer 0.5.3's Python contract; the raw ``torch.ops``
below them stay strict (float32, contiguous, int32 / float32 per-row arrays).

Inputs. ``probs`` (``logits`` for ``top_k_mask_logits``) is a (batch, vocab) tensor
of float16, bfloat16, float32 or float64, on a GPU or on the CPU (where the
torch-native reference runs); any strides. The ops compute in float32: a
contiguous float32 copy is made only when the input is not already one, and
results (renormalised probabilities, masked logits) are float32. Any other dtype
raises ``TypeError`` naming the argument.

Filter parameters. ``top_k`` / ``top_p`` / ``min_p`` is either a Python number,
applied to every row, or a 1-D tensor with one value per row of ``probs``, on the
same device. A tensor of another dtype is converted (``top_k`` to int32, values
beyond int32 saturating, which changes nothing since k >= vocab keeps every token;
``top_p`` / ``min_p`` to float32) and made contiguous. A tensor that is 0-D, has
more than one dimension, or whose length is not the number of rows of ``probs``
raises ``ValueError``, as FlashInfer's wrappers do; so does one on another device.
Scalars out of range raise ``RuntimeError`` from the op.

Rows need not be normalised: each row samples in proportion to its entries
(top-p's mass threshold is relative to the row's total); negative and NaN entries
count as probability 0; a row with no positive entry samples token 0. Which tokens
each filter keeps is documented in ``sgl_kernel.sampling_reference``; ties at the
top-k pivot are kept.

Sampling functions return int32 token ids, one per row, or one per entry of
``indices`` when given (int32 or int64, 1-D): output row ``i`` then samples from
``probs[indices[i]]`` and uses that row's parameters, which draws several samples
per prompt without copying rows. Random numbers come from ``generator`` (a
``torch.Generator`` of the probabilities' device) or the device's default
generator; the same generator state gives the same samples. ``deterministic=True``
makes the result independent of thread scheduling (a fixed-order scan).
``check_nan=True`` raises ``ValueError`` when ``probs`` holds a NaN (one host sync).
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch

Param = Union[torch.Tensor, float, int]

# The ops are reached through this name so that tests can observe what each wrapper
# passes to them (which tensors, converted or not).
_ops = torch.ops.sgl_kernel

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _as_float32_matrix(name: str, t: torch.Tensor) -> torch.Tensor:
    """``t`` as the contiguous float32 matrix the ops take: ``t`` itself when it is one."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be float16, bfloat16, float32 or float64, got {_dtype_name(t.dtype)}"
        )
    if t.dim() != 2:
        # The ops report the same; checked here first because the checks below need rows.
        raise RuntimeError(f"{name} must be 2-D (batch, vocab), got shape {list(t.shape)}")
    if t.dtype is torch.float32 and t.is_contiguous():
        return t  # the common case, without two dispatcher round trips per call
    return t.to(torch.float32).contiguous()


def _row_param(
    name: str, value: Param, probs: torch.Tensor, dtype: torch.dtype, of: str = "probs"
) -> tuple[Optional[torch.Tensor], Param]:
    """A scalar-or-tensor parameter as the ops take it: (per-row array, scalar fallback).

    The same shape conditions as FlashInfer 0.5.3's wrappers, raised as ValueError; `of`
    names the matrix whose rows the values follow.
    """
    if not isinstance(value, torch.Tensor):
        return None, value
    if value.dim() != 1:
        raise ValueError(
            f"{name} must be a number or a 1-D tensor with one value per row of {of}, "
            f"got a {value.dim()}-D tensor of shape {list(value.shape)}"
        )
    if value.size(0) != probs.size(0):
        raise ValueError(
            f"{name} must have one value per row of {of} ({probs.size(0)} rows), "
            f"got {value.size(0)} values"
        )
    if value.device != probs.device:
        raise ValueError(
            f"{name} must be on the same device as {of} ({probs.device}), got {value.device}"
        )
    if dtype == torch.int32 and value.dtype != torch.int32:
        if value.is_floating_point():
            value = value.double()  # holds every int32 exactly, so the clamp is exact
        if value.dtype in (torch.int64, torch.float64):
            # Saturate instead of wrapping: k >= vocab already keeps every token.
            value = value.clamp(_INT32_MIN, _INT32_MAX)
    if value.dtype is not dtype or not value.is_contiguous():
        value = value.to(dtype).contiguous()
    return value, 0


def _as_indices(indices: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """int32 or int64 row indices as the contiguous int32 vector the ops take."""
    if indices is None:
        return None
    if not isinstance(indices, torch.Tensor):
        raise TypeError(f"indices must be a torch.Tensor, got {type(indices).__name__}")
    if indices.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"indices must be int32 or int64, got {_dtype_name(indices.dtype)}")
    if indices.dtype == torch.int64:
        # Out-of-range values must stay out of range (the op rejects them), not wrap
        # onto a valid row.
        indices = indices.clamp(-1, _INT32_MAX).to(torch.int32)
    return indices if indices.is_contiguous() else indices.contiguous()


_INT64_MAX = 2**63 - 1


def _int_param(name: str, value: float) -> int:
    """An integer-valued scalar for an `int` schema argument; 2.5 must not become 2, and
    inf or NaN must not become an OverflowError. Any k >= vocab keeps every token, so
    values past int64 are passed as its largest value."""
    if isinstance(value, float) and not value.is_integer():
        raise RuntimeError(f"{name} must be an integer, got {value}")
    return min(int(value), _INT64_MAX)


def _check_nan(probs: torch.Tensor, check_nan: bool) -> None:
    if check_nan and bool(torch.isnan(probs).any()):
        raise ValueError("probs contains NaN (check_nan=True)")


def _new_samples(probs: torch.Tensor, indices: Optional[torch.Tensor]) -> torch.Tensor:
    rows = probs.size(0) if indices is None else (indices.size(0) if indices.dim() else 0)
    return torch.empty(rows, dtype=torch.int32, device=probs.device)


def top_k_renorm_probs(probs: torch.Tensor, top_k: Param) -> torch.Tensor:
    r"""Keep each row's top-k probabilities and renormalise them to sum to 1.

    Token i is kept iff fewer than k tokens of its row are strictly more likely (ties
    at the k-th value are kept); the others become 0.

    Parameters
    ----------
    probs : torch.Tensor
        (batch, vocab) probabilities, float16/bfloat16/float32/float64.
    top_k : int or torch.Tensor
        k >= 1 for every row, or an integer tensor of shape (batch,). k >= vocab keeps all.

    Returns
    -------
    torch.Tensor
        float32 (batch, vocab) renormalised probabilities; a row with no positive
        probability comes back all zero.

    Note
    ----
    Rows need not be normalised: the kept entries are divided by their own sum
    (top-p's mass threshold is relative to the row's total); negative and NaN entries
    count as probability 0.

    Example
    -------
    >>> probs = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    >>> sgl_kernel.top_k_renorm_probs(probs, 2)
    tensor([[0.0000, 0.0000, 0.4286, 0.5714]])
    """
    probs = _as_float32_matrix("probs", probs)
    arr, val = _row_param("top_k", top_k, probs, torch.int32)
    out = torch.empty_like(probs)
    _ops.top_k_renorm_probs.default(probs, out, arr, _int_param("top_k", val))
    return out


def top_p_renorm_probs(probs: torch.Tensor, top_p: Param) -> torch.Tensor:
    r"""Keep each row's top-p nucleus and renormalise it to sum to 1.

    Token i is kept iff the tokens strictly more likely than i hold less than p of
    the row's mass, i.e. the smallest set of most likely tokens whose mass reaches p.

    Parameters
    ----------
    probs : torch.Tensor
        (batch, vocab) probabilities, float16/bfloat16/float32/float64.
    top_p : float or torch.Tensor
        p in (0, 1] for every row, or a tensor of shape (batch,) (made float32). p = 1 keeps all.

    Returns
    -------
    torch.Tensor
        float32 (batch, vocab) renormalised probabilities.

    Note
    ----
    Rows need not be normalised: the kept entries are divided by their own sum
    (top-p's mass threshold is relative to the row's total); negative and NaN entries
    count as probability 0.

    Example
    -------
    >>> probs = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    >>> sgl_kernel.top_p_renorm_probs(probs, 0.5)
    tensor([[0.0000, 0.0000, 0.4286, 0.5714]])
    """
    probs = _as_float32_matrix("probs", probs)
    arr, val = _row_param("top_p", top_p, probs, torch.float32)
    out = torch.empty_like(probs)
    _ops.top_p_renorm_probs.default(probs, out, arr, float(val))
    return out


def top_k_mask_logits(logits: torch.Tensor, top_k: Param) -> torch.Tensor:
    r"""Set every logit outside each row's top-k to -inf (ties at the k-th value kept).

    Parameters
    ----------
    logits : torch.Tensor
        (batch, vocab) logits, float16/bfloat16/float32/float64.
    top_k : int or torch.Tensor
        k >= 1 for every row, or an integer tensor of shape (batch,).

    Returns
    -------
    torch.Tensor
        float32 (batch, vocab) masked logits; NaN logits become -inf.

    Example
    -------
    >>> sgl_kernel.top_k_mask_logits(torch.tensor([[1.0, 3.0, 2.0]]), 2)
    tensor([[-inf, 3., 2.]])
    """
    logits = _as_float32_matrix("logits", logits)
    arr, val = _row_param("top_k", top_k, logits, torch.int32)
    out = torch.empty_like(logits)
    _ops.top_k_mask_logits.default(logits, out, arr, _int_param("top_k", val))
    return out


def sampling_from_probs(
    probs: torch.Tensor,
    indices: Optional[torch.Tensor] = None,
    deterministic: bool = True,
    generator: Optional[torch.Generator] = None,
    check_nan: bool = False,
) -> torch.Tensor:
    r"""Draw one token per row from the categorical distribution ``probs``.

    Parameters
    ----------
    probs : torch.Tensor
        (batch, vocab) probabilities, float16/bfloat16/float32/float64; rows need
        not be normalised (see the module documentation).
    indices : torch.Tensor, optional
        int32 or int64 (n,): the probability row of each output row.
    deterministic, generator, check_nan
        See the module documentation.

    Returns
    -------
    torch.Tensor
        int32 (batch,) or (n,) token ids.

    Note
    ----
    Rows need not be normalised: each row samples in proportion to its entries
    (top-p's mass threshold is relative to the row's total); negative and NaN entries
    count as probability 0; a row with no positive entry samples token 0.

    Example
    -------
    >>> sgl_kernel.sampling_from_probs(torch.tensor([[0.0, 1.0]]))
    tensor([1], dtype=torch.int32)
    """
    probs = _as_float32_matrix("probs", probs)
    indices = _as_indices(indices)
    _check_nan(probs, check_nan)
    out = _new_samples(probs, indices)
    _ops.sampling_from_probs.default(probs, out, indices, deterministic, generator)
    return out


def top_k_sampling_from_probs(
    probs: torch.Tensor,
    top_k: Param,
    indices: Optional[torch.Tensor] = None,
    deterministic: bool = True,
    generator: Optional[torch.Generator] = None,
    check_nan: bool = False,
) -> torch.Tensor:
    r"""Draw one token per row from the top-k tokens, in proportion to their probability.

    Rejection sampling without sorting: no renormalised copy of ``probs`` is made.

    Parameters
    ----------
    probs : torch.Tensor
        (batch, vocab) probabilities, float16/bfloat16/float32/float64.
    top_k : int or torch.Tensor
        k >= 1, or a tensor (made int32) with one k per row of ``probs``.
    indices, deterministic, generator, check_nan
        See the module documentation.

    Returns
    -------
    torch.Tensor
        int32 token ids, one per output row.

    Note
    ----
    Rows need not be normalised: each row samples in proportion to its entries
    (top-p's mass threshold is relative to the row's total); negative and NaN entries
    count as probability 0; a row with no positive entry samples token 0.

    Example
    -------
    >>> probs = torch.tensor([[0.1, 0.2, 0.7]])
    >>> sgl_kernel.top_k_sampling_from_probs(probs, 1)
    tensor([2], dtype=torch.int32)
    """
    probs = _as_float32_matrix("probs", probs)
    arr, val = _row_param("top_k", top_k, probs, torch.int32)
    indices = _as_indices(indices)
    _check_nan(probs, check_nan)
    out = _new_samples(probs, indices)
    _ops.top_k_sampling_from_probs.default(
        probs, out, indices, arr, _int_param("top_k", val), deterministic, generator
    )
    return out


def top_p_sampling_from_probs(
    probs: torch.Tensor,
    top_p: Param,
    indices: Optional[torch.Tensor] = None,
    deterministic: bool = True,
    generator: Optional[torch.Generator] = None,
    check_nan: bool = False,
) -> torch.Tensor:
    r"""Draw one token per row from the top-p nucleus (see ``top_p_renorm_probs``).

    Parameters
    ----------
    probs : torch.Tensor
        (batch, vocab) probabilities, float16/bfloat16/float32/float64.
    top_p : float or torch.Tensor
        p in (0, 1], or a tensor (made float32) with one p per row of ``probs``.
    indices, deterministic, generator, check_nan
        See the module documentation.

    Returns
    -------
    torch.Tensor
        int32 token ids, one per output row.

    Note
    ----
    Rows need not be normalised: each row samples in proportion to its entries
    (top-p's mass threshold is relative to the row's total); negative and NaN entries
    count as probability 0; a row with no positive entry samples token 0.

    Example
    -------
    >>> probs = torch.tensor([[0.1, 0.2, 0.7]])
    >>> sgl_kernel.top_p_sampling_from_probs(probs, 0.5)
    tensor([2], dtype=torch.int32)
    """
    probs = _as_float32_matrix("probs", probs)
    arr, val = _row_param("top_p", top_p, probs, torch.float32)
    indices = _as_indices(indices)
    _check_nan(probs, check_nan)
    out = _new_samples(probs, indices)
    _ops.top_p_sampling_from_probs.default(
        probs, out, indices, arr, float(val), deterministic, generator
    )
    return out


def top_k_top_p_sampling_from_probs(
    probs: torch.Tensor,
    top_k: Param,
    top_p: Param,
    indices: Optional[torch.Tensor] = None,
    filter_apply_order: str = "top_k_first",
    deterministic: bool = True,
    generator: Optional[torch.Generator] = None,
    check_nan: bool = False,
) -> torch.Tensor:
    r"""Draw one token per row after top-k and top-p filtering.

    ``filter_apply_order="top_k_first"`` renormalises the top-k tokens first and
    applies top-p to that renormalised row (two kernels, as SGLang's Sampler does);
    ``"joint"`` keeps a token only if both filters keep it on the original row (one
    kernel). Any other value raises ``ValueError``.

    Parameters
    ----------
    probs : torch.Tensor
        (batch, vocab) probabilities, float16/bfloat16/float32/float64.
    top_k : int or torch.Tensor
        k >= 1, or a tensor (made int32) with one k per row of ``probs``.
    top_p : float or torch.Tensor
        p in (0, 1], or a tensor (made float32) with one p per row of ``probs``.
    indices, deterministic, generator, check_nan
        See the module documentation.

    Returns
    -------
    torch.Tensor
        int32 token ids, one per output row.

    Note
    ----
    Rows need not be normalised: each row samples in proportion to its entries
    (top-p's mass threshold is relative to the row's total); negative and NaN entries
    count as probability 0; a row with no positive entry samples token 0.

    Example
    -------
    >>> probs = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    >>> sgl_kernel.top_k_top_p_sampling_from_probs(probs, 1, 0.9, filter_apply_order="joint")
    tensor([3], dtype=torch.int32)
    """
    probs = _as_float32_matrix("probs", probs)
    # Both parameters are checked before the order, whichever path runs (as FlashInfer).
    k_arr, k_val = _row_param("top_k", top_k, probs, torch.int32)
    p_arr, p_val = _row_param("top_p", top_p, probs, torch.float32)
    if filter_apply_order not in ("top_k_first", "joint"):
        raise ValueError(
            f"filter_apply_order must be 'top_k_first' or 'joint', got {filter_apply_order!r}"
        )
    indices = _as_indices(indices)
    _check_nan(probs, check_nan)
    if filter_apply_order == "top_k_first":
        renormed = top_k_renorm_probs(probs, k_val if k_arr is None else k_arr)
        p = p_val if p_arr is None else p_arr
        return top_p_sampling_from_probs(renormed, p, indices, deterministic, generator)
    out = _new_samples(probs, indices)
    _ops.top_k_top_p_sampling_from_probs.default(
        probs, out, indices, k_arr, float(k_val), p_arr, float(p_val), deterministic, generator
    )
    return out


def min_p_sampling_from_probs(
    probs: torch.Tensor,
    min_p: Param,
    indices: Optional[torch.Tensor] = None,
    deterministic: bool = True,
    generator: Optional[torch.Generator] = None,
    check_nan: bool = False,
) -> torch.Tensor:
    r"""Draw one token per row among tokens with ``p_i >= min_p * max_j p_j``.

    Parameters
    ----------
    probs : torch.Tensor
        (batch, vocab) probabilities, float16/bfloat16/float32/float64.
    min_p : float or torch.Tensor
        min_p in [0, 1], or a tensor (made float32) with one value per row of ``probs``.
    indices, deterministic, generator, check_nan
        See the module documentation.

    Returns
    -------
    torch.Tensor
        int32 token ids, one per output row.

    Note
    ----
    Rows need not be normalised: each row samples in proportion to its entries
    (top-p's mass threshold is relative to the row's total); negative and NaN entries
    count as probability 0; a row with no positive entry samples token 0.

    Example
    -------
    >>> probs = torch.tensor([[0.05, 0.15, 0.8]])
    >>> sgl_kernel.min_p_sampling_from_probs(probs, 0.5)
    tensor([2], dtype=torch.int32)
    """
    probs = _as_float32_matrix("probs", probs)
    arr, val = _row_param("min_p", min_p, probs, torch.float32)
    indices = _as_indices(indices)
    _check_nan(probs, check_nan)
    out = _new_samples(probs, indices)
    _ops.min_p_sampling_from_probs.default(
        probs, out, indices, arr, float(val), deterministic, generator
    )
    return out


# FlashInfer's older spellings, exported upstream too.
top_k_renorm_prob = top_k_renorm_probs
top_p_renorm_prob = top_p_renorm_probs


_SEED_LOW, _SEED_HIGH = -(2**63), 2**63 - 1


def _fused_row_param(
    name: str, value: Param, probs: torch.Tensor, dtype: torch.dtype, of: str = "probs"
):
    """A scalar or per-row tensor as the fused op's per-row array (any value is defined)."""
    if isinstance(value, bool) or not isinstance(value, (torch.Tensor, int, float)):
        raise ValueError(
            f"{name} must be a number or a 1-D tensor with one value per row of {of}, "
            f"got {type(value).__name__}"
        )
    if not isinstance(value, torch.Tensor):
        if dtype == torch.int32:
            if isinstance(value, float) and not (value.is_integer() or abs(value) == math.inf):
                raise ValueError(f"{name} must be an integer or +-inf, got {value}")
            # Saturate: k <= 0 already cuts everything, k >= vocab nothing.
            value = int(max(_INT32_MIN, min(_INT32_MAX, value)))
        return torch.full((probs.size(0),), value, dtype=dtype, device=probs.device)
    arr, _ = _row_param(name, value, probs, dtype, of)
    return arr


def _fused_int64_rows(
    name: str, value: Optional[torch.Tensor], probs: torch.Tensor, of: str = "probs"
):
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a 1-D integer tensor, got {type(value).__name__}")
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor, got {_dtype_name(value.dtype)}")
    arr, _ = _row_param(name, value, probs, torch.int64, of)
    return arr


def _fused_filters(top_k: Param, top_p: Param, min_p: Param, x: torch.Tensor, of: str):
    """The probs op's per-row (int32 k, float32 p, float32 min_p) arrays for x's rows (the
    logits op takes each filter through _logits_filter, which may give None)."""
    return (
        _fused_row_param("top_k", top_k, x, torch.int32, of),
        _fused_row_param("top_p", top_p, x, torch.float32, of),
        _fused_row_param("min_p", min_p, x, torch.float32, of),
    )


def _fused_seeds(seeds: Optional[torch.Tensor], generator, x: torch.Tensor, of: str):
    """int64 seeds for x's rows: the given ones, or drawn on x's device from `generator`
    (no host sync, so a call can be captured in a graph)."""
    if seeds is not None:
        return _fused_int64_rows("seeds", seeds, x, of)
    return torch.randint(
        _SEED_LOW, _SEED_HIGH, (x.size(0),), dtype=torch.int64, device=x.device,
        generator=generator,
    )  # fmt: skip


def top_k_top_p_min_p_sampling_from_probs(
    probs: torch.Tensor,
    top_k: Param,
    top_p: Param,
    min_p: Param,
    seeds: Optional[torch.Tensor] = None,
    positions: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    r"""Draw one token per row after top-k, top-p and min-p, keyed by (seed, position).

    One definition for every row (docs/sampling.md, "The fused seeded op"): weights are
    the positive entries (NaN and negatives weigh 0; a row with +inf or a total outside
    the normal float32 range samples token 0). Ranked by weight, ties by token id, a token
    is kept unless its rank is >= k, the weight ranked above it exceeds p times the row
    total, or its weight is below max weight * min_p. The token is the Gumbel-max over the
    kept tokens with uniforms hashed from (seed, position, token id): a row's token
    depends only on its own probabilities, parameters, seed and position, never on its
    batch slot or batch-mates. Nothing kept: token 0.

    Parameters
    ----------
    probs : torch.Tensor
        (batch, vocab) probabilities, float16/bfloat16/float32/float64, any strides.
    top_k, top_p, min_p : number or torch.Tensor
        One value for every row, or a 1-D tensor with one value per row (converted to
        int32 / float32 / float32). Every value is defined: k <= 0 and p < 0 keep
        nothing, k >= vocab, p >= 1, min_p <= 0 and NaN p or min_p cut nothing.
    seeds : torch.Tensor, optional
        Integer (batch,) seeds (made int64). None: drawn from ``generator`` on the
        probabilities' device (no host sync, so the call can be captured in a graph).
    positions : torch.Tensor, optional
        Integer (batch,) positions of the tokens being sampled (made int64); None: zeros.
    generator : torch.Generator, optional
        Used only to draw ``seeds`` when they are not given.

    Returns
    -------
    torch.Tensor
        int32 (batch,) token ids.

    Example
    -------
    >>> probs = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    >>> sgl_kernel.top_k_top_p_min_p_sampling_from_probs(probs, 1, 1.0, 0.0)
    tensor([3], dtype=torch.int32)
    """
    probs = _as_float32_matrix("probs", probs)
    k, p, m = _fused_filters(top_k, top_p, min_p, probs, "probs")
    seeds = _fused_seeds(seeds, generator, probs, "probs")
    rows = probs.size(0)
    if positions is None:
        positions = torch.zeros(rows, dtype=torch.int64, device=probs.device)
    else:
        positions = _fused_int64_rows("positions", positions, probs)
    out = torch.empty(rows, dtype=torch.int32, device=probs.device)
    _ops.top_k_top_p_min_p_sampling_from_probs.default(probs, out, k, p, m, seeds, positions)
    return out


_LOGIT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _logits_filter(name, value, logits, dtype, cuts_nothing):
    """A from-logits filter as the op takes it: None when it can cut no row (given as None,
    or a number that cuts nothing), so the op skips the launches only cuts need; else the
    per-row array."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and cuts_nothing(value):
        return None
    return _fused_row_param(name, value, logits, dtype, "logits")


def top_k_top_p_min_p_sampling_from_logits(
    logits: torch.Tensor,
    temperature: Param,
    top_k: Optional[Param] = None,
    top_p: Optional[Param] = None,
    min_p: Optional[Param] = None,
    seeds: Optional[torch.Tensor] = None,
    positions: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    r"""Draw one token per row from logits: temperature, top-k, top-p and min-p in one op.

    Per row (docs/sampling.md, "From logits"): the scaled logits
    :math:`s = x \cdot \mathrm{fl}(1/T)` in float32, NaN and -inf as the most negative
    float32, +inf as the largest. A row with ``temperature <= 0`` (or NaN) is greedy: the
    argmax of ``s``, ties to the lower id; so is a row with ``top_k == 1``. Other rows keep
    the tokens of ``top_k_top_p_min_p_sampling_from_probs``'s definition over the weights
    :math:`w_i = \exp(s_i - \max s)` (the softmax up to its total; float32) and draw among
    them by Gumbel-max with uniforms hashed from (seed, position, token id): the token
    depends only on the row, its parameters, seed and position, never on its batch slot
    or batch-mates. Nothing kept: token 0.

    Parameters
    ----------
    logits : torch.Tensor
        (batch, vocab) float32, float16 or bfloat16, any strides: read where they are, no
        copy (float64 is converted to float32 first). Vocab below 2^20.
    temperature, top_k, top_p, min_p : number or torch.Tensor
        One value for every row, or a 1-D tensor with one value per row (converted to
        float32 / int32 / float32 / float32). Every value is defined: temperature <= 0
        greedy; k <= 0 and p < 0 keep nothing, k >= vocab, p >= 1, min_p <= 0 and NaN p or
        min_p cut nothing. A filter given as None, or as a number that cuts nothing, is off
        for every row; with neither top-k nor top-p on, the op makes two launches, not four.
    seeds : torch.Tensor, optional
        Integer (batch,) seeds (made int64). None: drawn from ``generator`` on the logits'
        device (no host sync; graph-capturable).
    positions : torch.Tensor, optional
        Integer (batch,) positions of the tokens being sampled (made int64); None: 0.
    generator : torch.Generator, optional
        Used only to draw ``seeds`` when they are not given.

    Returns
    -------
    torch.Tensor
        int32 (batch,) token ids.

    Example
    -------
    >>> logits = torch.tensor([[1.0, 3.0, 2.0]])
    >>> sgl_kernel.top_k_top_p_min_p_sampling_from_logits(logits, 0.0, -1, 1.0, 0.0)
    tensor([1], dtype=torch.int32)

    Note
    ----
    The GPU computes ``exp`` in float32 with its own rounding (a few ulp from the CPU's),
    so the two agree token for token except where a weight lies within that rounding of
    a filter's boundary or two Gumbel keys nearly tie.
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if logits.dtype == torch.float64:
        logits = logits.float()
    elif logits.dtype not in _LOGIT_DTYPES:
        raise TypeError(
            f"logits must be float16, bfloat16, float32 or float64, got {_dtype_name(logits.dtype)}"
        )
    if logits.dim() != 2:
        raise RuntimeError(f"logits must be 2-D (batch, vocab), got shape {list(logits.shape)}")
    t = _fused_row_param("temperature", temperature, logits, torch.float32, "logits")
    vocab = logits.size(1)
    k = _logits_filter(
        "top_k", top_k, logits, torch.int32,
        lambda v: v >= vocab and (isinstance(v, int) or v == math.inf or v.is_integer()),
    )  # fmt: skip
    p = _logits_filter("top_p", top_p, logits, torch.float32, lambda v: not v < 1)  # NaN: off
    m = _logits_filter("min_p", min_p, logits, torch.float32, lambda v: not v > 0)
    seeds = _fused_seeds(seeds, generator, logits, "logits")
    if positions is not None:
        positions = _fused_int64_rows("positions", positions, logits, "logits")
    out = torch.empty(logits.size(0), dtype=torch.int32, device=logits.device)
    _ops.top_k_top_p_min_p_sampling_from_logits.default(logits, out, t, k, p, m, seeds, positions)
    return out


# ----------------------------------------------------------------------------- from logits
# softmax, sampling_from_logits and top_k_top_p_sampling_from_logits are composed from the
# ops above and torch's softmax (no kernel of their own): FlashInfer 0.5.3's semantics,
# argument names and defaults.


def _temperature_rows(temperature, logits: torch.Tensor):
    """A scalar, or a (batch,) float32 column for broadcasting; FlashInfer's shape rules."""
    if not isinstance(temperature, torch.Tensor):
        return float(temperature)
    arr, _ = _row_param("temperature", temperature, logits, torch.float32)
    return arr.view(-1, 1)


def softmax(
    logits: torch.Tensor,
    temperature: Optional[Union[torch.Tensor, float]] = None,
    enable_pdl: Optional[bool] = None,
) -> torch.Tensor:
    r"""Row-wise softmax of ``logits / temperature``, in float32.

    .. math:: \mathrm{probs}_{ij} = \frac{e^{x_{ij} / T_i}}{\sum_k e^{x_{ik} / T_i}}

    Parameters
    ----------
    logits : torch.Tensor
        (batch, vocab) float16/bfloat16/float32/float64 logits, any strides.
    temperature : float or torch.Tensor, optional
        One temperature for every row, or a 1-D tensor with one per row (made float32).
        None: 1. The division is plain: T = 0 gives inf / NaN as in FlashInfer.
    enable_pdl : bool, optional
        Accepted for FlashInfer compatibility and ignored (no programmatic dependent
        launch on MUSA).

    Returns
    -------
    torch.Tensor
        float32 (batch, vocab) probabilities; a row of -inf logits gives NaN, as torch.

    Note
    ----
    torch's own softmax on the logits' device (a torch-composed path: one division and
    torch's fused softmax kernel), not a kernel of this package.

    Example
    -------
    >>> sgl_kernel.softmax(torch.tensor([[0.0, 0.0]]), temperature=0.5)
    tensor([[0.5000, 0.5000]])
    """
    logits = _as_float32_matrix("logits", logits)
    if temperature is not None:
        logits = logits / _temperature_rows(temperature, logits)
    return torch.softmax(logits, dim=-1)


def _sample_softmax_of_logits(
    logits: torch.Tensor,
    top_k: Optional[Param],
    top_p: Optional[Param],
    indices: Optional[torch.Tensor],
    deterministic: bool,
    generator: Optional[torch.Generator],
    check_nan: bool,
) -> torch.Tensor:
    """The one place that samples softmax(logits), optionally with joint top-k / top-p:
    sampling_from_logits and the "joint" order of top_k_top_p_sampling_from_logits."""
    probs = softmax(logits)
    _check_nan(probs, check_nan)
    if top_k is None and top_p is None:
        return sampling_from_probs(probs, indices, deterministic, generator)
    return top_k_top_p_sampling_from_probs(
        probs, top_k, top_p, indices, "joint", deterministic, generator
    )


def sampling_from_logits(
    logits: torch.Tensor,
    indices: Optional[torch.Tensor] = None,
    deterministic: bool = True,
    generator: Optional[torch.Generator] = None,
    check_nan: bool = False,
) -> torch.Tensor:
    r"""Draw one token per row from softmax(logits).

    Parameters
    ----------
    logits : torch.Tensor
        (batch, vocab) logits, float16/bfloat16/float32/float64.
    indices : torch.Tensor, optional
        int32 or int64 (n,): the logits row of each output row.
    deterministic, generator
        See the module documentation.
    check_nan : bool
        Raise ``ValueError`` when ``logits`` holds a NaN (one host sync).

    Returns
    -------
    torch.Tensor
        int32 (batch,) or (n,) token ids.

    Example
    -------
    >>> sgl_kernel.sampling_from_logits(torch.tensor([[0.0, 100.0]]))
    tensor([1], dtype=torch.int32)
    """
    logits = _as_float32_matrix("logits", logits)
    if check_nan and bool(torch.isnan(logits).any()):
        raise ValueError("logits contains NaN (check_nan=True)")
    return _sample_softmax_of_logits(logits, None, None, indices, deterministic, generator, False)


def top_k_top_p_sampling_from_logits(
    logits: torch.Tensor,
    top_k: Param,
    top_p: Param,
    indices: Optional[torch.Tensor] = None,
    filter_apply_order: str = "top_k_first",
    deterministic: bool = True,
    generator: Optional[torch.Generator] = None,
    check_nan: bool = False,
) -> torch.Tensor:
    r"""Draw one token per row from softmax(logits) after top-k and top-p filtering.

    ``"top_k_first"``: the logits outside the top-k become -inf (``top_k_mask_logits``),
    then top-p sampling of their softmax; ``"joint"``: a token is kept only if both
    filters keep it on softmax(logits). The same generator state gives the same tokens as
    ``top_k_top_p_sampling_from_probs(softmax(logits), ...)`` with the same order (up to
    the rounding of the two softmax paths). Any other order raises ``ValueError``.

    Parameters
    ----------
    logits : torch.Tensor
        (batch, vocab) logits, float16/bfloat16/float32/float64.
    top_k, top_p : number or torch.Tensor
        As in ``top_k_top_p_sampling_from_probs``.
    indices, deterministic, generator
        See the module documentation.
    check_nan : bool
        Raise ``ValueError`` when the probabilities hold a NaN (one host sync).

    Returns
    -------
    torch.Tensor
        int32 token ids, one per output row.

    Example
    -------
    >>> logits = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    >>> sgl_kernel.top_k_top_p_sampling_from_logits(logits, 1, 0.9)
    tensor([3], dtype=torch.int32)
    """
    logits = _as_float32_matrix("logits", logits)
    # Shape rules of both parameters first, whichever order runs (as FlashInfer).
    _row_param("top_k", top_k, logits, torch.int32)
    _row_param("top_p", top_p, logits, torch.float32)
    if filter_apply_order == "top_k_first":
        probs = softmax(top_k_mask_logits(logits, top_k))
        return top_p_sampling_from_probs(probs, top_p, indices, deterministic, generator, check_nan)
    if filter_apply_order == "joint":
        return _sample_softmax_of_logits(
            logits, top_k, top_p, indices, deterministic, generator, check_nan
        )
    raise ValueError(
        f"filter_apply_order must be 'top_k_first' or 'joint', got {filter_apply_order!r}"
    )


# ----------------------------------------------------------------------------- chain


def _int32_ids(name: str, t: torch.Tensor) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {_dtype_name(t.dtype)}")
    if t.dtype != torch.int32:
        t = t.clamp(-1, _INT32_MAX).to(torch.int32)  # out of range stays out of range
    return t.contiguous()


def _as_float32(name: str, t: torch.Tensor) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be float16, bfloat16, float32 or float64, got {_dtype_name(t.dtype)}"
        )
    return t.to(torch.float32).contiguous()


def chain_speculative_sampling(
    draft_probs: torch.Tensor,
    draft_token_ids: torch.Tensor,
    target_probs: torch.Tensor,
    maybe_output_accepted_token_num: Optional[torch.Tensor] = None,
    maybe_output_emitted_draft_token_num: Optional[torch.Tensor] = None,
    deterministic: bool = True,
    generator: Optional[torch.Generator] = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Speculative sampling of a chain of draft tokens (FlashInfer's contract).

    Draft token i of a row is accepted with probability min(1, target_i / draft_i) of its
    token, up to the first rejection; the token at that position is drawn from
    max(target - draft, 0) there (from the extra target row when every draft token was
    accepted); later positions are -1. The emitted tokens are an exact sample of the
    target distribution.

    Parameters
    ----------
    draft_probs : torch.Tensor
        (batch, n, vocab) draft model probabilities (made float32).
    draft_token_ids : torch.Tensor
        Integer (batch, n) draft tokens (made int32), in [0, vocab) (checked: one host sync).
    target_probs : torch.Tensor
        (batch, n + 1, vocab) target model probabilities (made float32).
    maybe_output_accepted_token_num, maybe_output_emitted_draft_token_num : torch.Tensor, optional
        int32 (batch,) counters to add to in place; None: new zero tensors.
    deterministic, generator
        See the module documentation (n + 1 Philox numbers per row).

    Returns
    -------
    tuple
        int32 (batch, n + 1) output tokens (-1 after the first rejected position); the
        accepted counter (tokens each accepted on their own: FlashInfer's alignment metric);
        the emitted counter (accepted draft tokens before the first rejection, bonus not
        counted).

    Example
    -------
    >>> draft = torch.tensor([[[0.5, 0.5]]]); target = torch.tensor([[[0.5, 0.5], [0.0, 1.0]]])
    >>> out, acc, emitted = sgl_kernel.chain_speculative_sampling(
    ...     draft, torch.tensor([[0]]), target)
    >>> out
    tensor([[0, 1]], dtype=torch.int32)
    """
    draft_probs = _as_float32("draft_probs", draft_probs)
    target_probs = _as_float32("target_probs", target_probs)
    draft_token_ids = _int32_ids("draft_token_ids", draft_token_ids)
    if draft_probs.dim() != 3 or draft_token_ids.dim() != 2:
        raise RuntimeError(
            "chain_speculative_sampling: draft_probs must be 3-D and draft_token_ids 2-D, got "
            f"shapes {list(draft_probs.shape)} and {list(draft_token_ids.shape)}"
        )
    b, n = draft_token_ids.shape
    dev = draft_probs.device
    counters = []
    for name, given in (
        ("maybe_output_accepted_token_num", maybe_output_accepted_token_num),
        ("maybe_output_emitted_draft_token_num", maybe_output_emitted_draft_token_num),
    ):
        if given is None:
            given = torch.zeros(b, dtype=torch.int32, device=dev)
        elif not isinstance(given, torch.Tensor) or given.dtype != torch.int32:
            raise ValueError(f"{name} must be an int32 tensor (it is added to in place)")
        counters.append(given)
    out = torch.empty((b, n + 1), dtype=torch.int32, device=dev)
    _ops.chain_speculative_sampling.default(
        draft_probs, draft_token_ids, target_probs, out, counters[0], counters[1],
        deterministic, generator,
    )  # fmt: skip
    return out, counters[0], counters[1]
