"""FlashInfer-compatible sampling functions over the ``torch.ops.sgl_kernel`` ops.

Every function takes float32 (batch, vocab) probabilities (logits for
``top_k_mask_logits``) on a GPU, or on the CPU (where the torch-native reference
runs). A filter parameter is either a Python number, applied to every row, or a
1-D tensor with one value per row of ``probs`` (int32 for ``top_k``, float32 for
``top_p`` / ``min_p``).

Sampling functions return int32 token ids, one per row, or one per entry of
``indices`` when given: output row ``i`` then samples from ``probs[indices[i]]`` (and
uses that row's parameters), which draws several samples per prompt without copying
rows. Random numbers come from ``generator`` (a ``torch.Generator`` of the
probabilities' device) or the device's default generator; the same generator state
gives the same samples. ``deterministic=True`` makes the result independent of
thread scheduling (a fixed-order scan).

Which tokens each filter keeps is documented in ``sgl_kernel.sampling_reference``;
ties at the top-k pivot are kept. A row with no positive probability samples
token 0. Invalid arguments raise ``RuntimeError`` naming the argument;
``check_nan=True`` raises ``ValueError`` on NaN input (one host sync).
"""

from __future__ import annotations

from typing import Optional, Union

import torch

Param = Union[torch.Tensor, float, int]


def _split_param(value: Param) -> tuple[Optional[torch.Tensor], float]:
    """A scalar-or-tensor parameter as the ops take it: (per-row array, scalar fallback)."""
    if isinstance(value, torch.Tensor):
        return value, 0
    return None, value


def _int_param(name: str, value: float) -> int:
    """An integer-valued scalar for an `int` schema argument; 2.5 must not become 2."""
    if isinstance(value, float) and not value.is_integer():
        raise RuntimeError(f"{name} must be an integer, got {value}")
    return int(value)


def _output_rows(probs: torch.Tensor, indices: Optional[torch.Tensor]) -> int:
    if indices is not None:
        return indices.size(0) if indices.dim() >= 1 else 0
    if probs.dim() != 2:
        # The ops report the same; checked here first because sizing the output needs it.
        raise RuntimeError(f"probs must be 2-D (batch, vocab), got shape {list(probs.shape)}")
    return probs.size(0)


def _check_nan(probs: torch.Tensor, check_nan: bool) -> None:
    if check_nan and bool(torch.isnan(probs).any()):
        raise ValueError("probs contains NaN (check_nan=True)")


def _new_samples(probs: torch.Tensor, indices: Optional[torch.Tensor]) -> torch.Tensor:
    return torch.empty(_output_rows(probs, indices), dtype=torch.int32, device=probs.device)


def top_k_renorm_probs(probs: torch.Tensor, top_k: Param) -> torch.Tensor:
    r"""Keep each row's top-k probabilities and renormalise them to sum to 1.

    Token i is kept iff fewer than k tokens of its row are strictly more likely (ties
    at the k-th value are kept); the others become 0.

    Parameters
    ----------
    probs : torch.Tensor
        float32 (batch, vocab) probabilities.
    top_k : int or torch.Tensor
        k >= 1 for every row, or an int32 tensor of shape (batch,). k >= vocab keeps all.

    Returns
    -------
    torch.Tensor
        float32 (batch, vocab) renormalised probabilities; a row with no positive
        probability comes back all zero.

    Example
    -------
    >>> probs = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    >>> sgl_kernel.top_k_renorm_probs(probs, 2)
    tensor([[0.0000, 0.0000, 0.4286, 0.5714]])
    """
    arr, val = _split_param(top_k)
    out = torch.empty_like(probs)
    torch.ops.sgl_kernel.top_k_renorm_probs.default(probs, out, arr, _int_param("top_k", val))
    return out


def top_p_renorm_probs(probs: torch.Tensor, top_p: Param) -> torch.Tensor:
    r"""Keep each row's top-p nucleus and renormalise it to sum to 1.

    Token i is kept iff the tokens strictly more likely than i hold less than p of
    the row's mass, i.e. the smallest set of most likely tokens whose mass reaches p.

    Parameters
    ----------
    probs : torch.Tensor
        float32 (batch, vocab) probabilities.
    top_p : float or torch.Tensor
        p in (0, 1] for every row, or a float32 tensor of shape (batch,). p = 1 keeps all.

    Returns
    -------
    torch.Tensor
        float32 (batch, vocab) renormalised probabilities.

    Example
    -------
    >>> probs = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    >>> sgl_kernel.top_p_renorm_probs(probs, 0.5)
    tensor([[0.0000, 0.0000, 0.4286, 0.5714]])
    """
    arr, val = _split_param(top_p)
    out = torch.empty_like(probs)
    torch.ops.sgl_kernel.top_p_renorm_probs.default(probs, out, arr, float(val))
    return out


def top_k_mask_logits(logits: torch.Tensor, top_k: Param) -> torch.Tensor:
    r"""Set every logit outside each row's top-k to -inf (ties at the k-th value kept).

    Parameters
    ----------
    logits : torch.Tensor
        float32 (batch, vocab) logits.
    top_k : int or torch.Tensor
        k >= 1 for every row, or an int32 tensor of shape (batch,).

    Returns
    -------
    torch.Tensor
        float32 (batch, vocab) masked logits; NaN logits become -inf.

    Example
    -------
    >>> sgl_kernel.top_k_mask_logits(torch.tensor([[1.0, 3.0, 2.0]]), 2)
    tensor([[-inf, 3., 2.]])
    """
    arr, val = _split_param(top_k)
    out = torch.empty_like(logits)
    torch.ops.sgl_kernel.top_k_mask_logits.default(logits, out, arr, _int_param("top_k", val))
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
        float32 (batch, vocab) probabilities (need not be normalised).
    indices : torch.Tensor, optional
        int32 (n,) probability row of each output row.
    deterministic, generator, check_nan
        See the module documentation.

    Returns
    -------
    torch.Tensor
        int32 (batch,) or (n,) token ids.

    Example
    -------
    >>> sgl_kernel.sampling_from_probs(torch.tensor([[0.0, 1.0]]))
    tensor([1], dtype=torch.int32)
    """
    _check_nan(probs, check_nan)
    out = _new_samples(probs, indices)
    torch.ops.sgl_kernel.sampling_from_probs.default(probs, out, indices, deterministic, generator)
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
        float32 (batch, vocab) probabilities.
    top_k : int or torch.Tensor
        k >= 1, or an int32 tensor with one k per row of ``probs``.
    indices, deterministic, generator, check_nan
        See the module documentation.

    Returns
    -------
    torch.Tensor
        int32 token ids, one per output row.

    Example
    -------
    >>> probs = torch.tensor([[0.1, 0.2, 0.7]])
    >>> sgl_kernel.top_k_sampling_from_probs(probs, 1)
    tensor([2], dtype=torch.int32)
    """
    _check_nan(probs, check_nan)
    arr, val = _split_param(top_k)
    out = _new_samples(probs, indices)
    torch.ops.sgl_kernel.top_k_sampling_from_probs.default(
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
        float32 (batch, vocab) probabilities.
    top_p : float or torch.Tensor
        p in (0, 1], or a float32 tensor with one p per row of ``probs``.
    indices, deterministic, generator, check_nan
        See the module documentation.

    Returns
    -------
    torch.Tensor
        int32 token ids, one per output row.

    Example
    -------
    >>> probs = torch.tensor([[0.1, 0.2, 0.7]])
    >>> sgl_kernel.top_p_sampling_from_probs(probs, 0.5)
    tensor([2], dtype=torch.int32)
    """
    _check_nan(probs, check_nan)
    arr, val = _split_param(top_p)
    out = _new_samples(probs, indices)
    torch.ops.sgl_kernel.top_p_sampling_from_probs.default(
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
        float32 (batch, vocab) probabilities.
    top_k : int or torch.Tensor
        k >= 1, or an int32 tensor with one k per row of ``probs``.
    top_p : float or torch.Tensor
        p in (0, 1], or a float32 tensor with one p per row of ``probs``.
    indices, deterministic, generator, check_nan
        See the module documentation.

    Returns
    -------
    torch.Tensor
        int32 token ids, one per output row.

    Example
    -------
    >>> probs = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    >>> sgl_kernel.top_k_top_p_sampling_from_probs(probs, 1, 0.9, filter_apply_order="joint")
    tensor([3], dtype=torch.int32)
    """
    if filter_apply_order not in ("top_k_first", "joint"):
        raise ValueError(
            f"filter_apply_order must be 'top_k_first' or 'joint', got {filter_apply_order!r}"
        )
    _check_nan(probs, check_nan)
    if filter_apply_order == "top_k_first":
        renormed = top_k_renorm_probs(probs, top_k)
        return top_p_sampling_from_probs(renormed, top_p, indices, deterministic, generator)
    k_arr, k_val = _split_param(top_k)
    p_arr, p_val = _split_param(top_p)
    out = _new_samples(probs, indices)
    torch.ops.sgl_kernel.top_k_top_p_sampling_from_probs.default(
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
        float32 (batch, vocab) probabilities.
    min_p : float or torch.Tensor
        min_p in [0, 1], or a float32 tensor with one value per row of ``probs``.
    indices, deterministic, generator, check_nan
        See the module documentation.

    Returns
    -------
    torch.Tensor
        int32 token ids, one per output row.

    Example
    -------
    >>> probs = torch.tensor([[0.05, 0.15, 0.8]])
    >>> sgl_kernel.min_p_sampling_from_probs(probs, 0.5)
    tensor([2], dtype=torch.int32)
    """
    _check_nan(probs, check_nan)
    arr, val = _split_param(min_p)
    out = _new_samples(probs, indices)
    torch.ops.sgl_kernel.min_p_sampling_from_probs.default(
        probs, out, indices, arr, float(val), deterministic, generator
    )
    return out


# FlashInfer's older spellings, exported upstream too.
top_k_renorm_prob = top_k_renorm_probs
top_p_renorm_prob = top_p_renorm_probs
