"""Test helpers shared by the kernel tests (sgl-kernel/tests), the sampler tests
(test/srt) and the main job. Importable as ``sgl_kernel.testing``; needs scipy.

- Devices: every test runs on the CPU and, when a GPU is visible, on the GPU build of
  the same ops (``DEVICES``, ``GPU``).
- ``OP_CASES``: one record per op (and per sampling path of the wrappers): how to call
  its wrapper, its raw op's arguments, its registered schema, and what it must return
  under the input contract (``expected``), built on ``sgl_kernel.sampling_reference``.
- The fused seeded op: ``fused_distribution`` (what each row samples from, exactly) and
  ``fused_reference_tokens`` (the CPU reference's tokens), for any parameter values.
- Goodness of fit: sampling tests compare token counts with the exact expected
  distribution by Pearson's chi-square test at a false-alarm rate of ALPHA per case:
  with fixed seeds the suite is deterministic, and a correct sampler fails a given
  case with probability ALPHA over the choice of seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch
from scipy import stats

import sgl_kernel
from sgl_kernel import sampling_reference as ref

ALPHA = 1e-4
TOP_K_ALL = 1 << 30  # what SGLang passes for top_k = -1

# ----------------------------------------------------------------------------- devices


def _gpu_device():
    if torch.cuda.is_available():
        return "cuda"
    musa = getattr(torch, "musa", None)
    if musa is not None and musa.is_available():
        return "musa"
    return None


GPU = _gpu_device()
DEVICES = ["cpu"] + ([GPU] if GPU else [])


def is_gpu(device: str) -> bool:
    return device != "cpu"


def synchronize(device: str) -> None:
    """Wait for the device's queued work, so a kernel fault surfaces here."""
    if device == "cuda":
        torch.cuda.synchronize()
    elif device == "musa":
        torch.musa.synchronize()


# ----------------------------------------------------------------------------- parameters

Param = Union[torch.Tensor, float, int]


@dataclass(frozen=True)
class Params:
    """Filter parameters of one call: a scalar for every row or a tensor per probs row."""

    top_k: Optional[Param] = None
    top_p: Optional[Param] = None
    min_p: Optional[Param] = None

    def get(self, name: str) -> Param:
        value = getattr(self, name)
        return {"top_k": TOP_K_ALL, "top_p": 1.0, "min_p": 0.0}[name] if value is None else value

    def split(self, name: str) -> tuple[Optional[torch.Tensor], float]:
        """(per-row array, scalar) as the raw ops take them."""
        value = self.get(name)
        return (value, 0) if isinstance(value, torch.Tensor) else (None, value)

    def to(self, device) -> "Params":
        move = lambda v: v.to(device) if isinstance(v, torch.Tensor) else v  # noqa: E731
        return Params(move(self.top_k), move(self.top_p), move(self.min_p))


# ----------------------------------------------------------------------------- exact results


def _rows(params: Params, name: str, x: torch.Tensor) -> torch.Tensor:
    """A parameter as float64 per probs row, clamped as the contract says (rule 4)."""
    arr, val = params.split(name)
    arr = None if arr is None else arr.to(x.device)
    return {"top_k": ref.top_k_rows, "top_p": ref.top_p_rows, "min_p": ref.min_p_rows}[name](
        arr, val, x
    )


def keep_mask(filters: tuple, x: torch.Tensor, params: Params) -> torch.Tensor:
    """Which entries the filters keep together on the original row (joint semantics)."""
    keep = ref.weights(x) > 0
    if "top_k" in filters:
        keep &= ref.top_k_keep(x, _rows(params, "top_k", x))
    if "top_p" in filters:
        keep &= ref.top_p_keep(x, _rows(params, "top_p", x))
    if "min_p" in filters:
        keep &= ref.min_p_keep(x, _rows(params, "min_p", x))
    return keep


def renormalised(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """float32 w_i / sum of kept w_j on kept entries, 0 elsewhere; all-zero rows stay 0."""
    kept = torch.where(keep, ref.weights(x).double(), 0.0)
    total = kept.sum(-1, keepdim=True)
    return torch.where(total > 0, kept / total.clamp_min(1e-300), 0.0).float()


def sample_distribution(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """float64 (rows, vocab): what each row samples from; a row with nothing kept gives 0."""
    kept = torch.where(keep, ref.weights(x).double(), 0.0)
    total = kept.sum(-1, keepdim=True)
    empty = (total <= 0).view(-1)
    kept[empty, 0] = 1.0
    return kept / kept.sum(-1, keepdim=True)


def masked_logits(logits: torch.Tensor, params: Params) -> torch.Tensor:
    keep = ref.top_k_logits_keep(logits, _rows(params, "top_k", logits))
    return torch.where(keep, logits, float("-inf"))


# ----------------------------------------------------------------------------- op records


@dataclass(frozen=True)
class OpCase:
    """One op (or one sampling path of the wrappers): how to call it and what it returns.

    kind: "renorm" (probabilities out), "mask" (logits out) or "sample" (token ids out).
    filters: the filter parameters it takes, in argument order.
    op: the registered op it calls, None for a path made of several ops (top_k_first).
    schema: that op's registered schema after its name.
    """

    id: str
    kind: str
    filters: tuple
    wrapper: str
    op: Optional[str] = None
    schema: Optional[str] = None
    order: Optional[str] = None  # filter_apply_order of top_k_top_p_sampling_from_probs

    def call(self, x: torch.Tensor, params: Params, **kwargs) -> torch.Tensor:
        """Through the public wrapper; kwargs: indices, deterministic, generator, check_nan."""
        args = [params.get(name) for name in self.filters]
        if self.order is not None:
            kwargs["filter_apply_order"] = self.order
        return getattr(sgl_kernel, self.wrapper)(x, *args, **kwargs)

    def raw_args(self, x, params, out=None, indices=None, deterministic=True, gen=None):
        """Positional arguments of the registered op (scalar -> (None, value))."""
        if out is None:
            rows = x.size(0) if indices is None else indices.size(0)
            out = (
                torch.empty_like(x)
                if self.kind != "sample"
                else torch.empty(rows, dtype=torch.int32, device=x.device)
            )
        split = []
        for name in self.filters:
            arr, val = params.split(name)
            # the joint op's top_k_val is a float in its schema, the others' an int
            float_k = name == "top_k" and self.op == "top_k_top_p_sampling_from_probs"
            split += [arr, float(val) if name != "top_k" or float_k else val]
        if self.kind == "sample":
            return (x, out, indices, *split, deterministic, gen)
        return (x, out, *split)

    def run_raw(self, x, params, **kwargs) -> torch.Tensor:
        args = self.raw_args(x, params, **kwargs)
        getattr(torch.ops.sgl_kernel, self.op).default(*args)
        return args[1]

    def keep(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """Entries that may appear in the result (the contract's keep mask)."""
        if self.kind == "mask":
            return ref.top_k_logits_keep(x, _rows(params, "top_k", x))
        if self.order == "top_k_first":
            first = renormalised(x, keep_mask(("top_k",), x, params))
            return keep_mask(("top_p",), first, params)
        return keep_mask(self.filters, x, params)

    def expected(self, x, params, indices=None) -> torch.Tensor:
        """renorm: the float32 output; mask: the float32 output; sample: float64
        (output rows, vocab) distribution of each output row (params follow the
        probs row that ``indices`` maps it to)."""
        x = x.cpu()
        params = params.to("cpu")
        if self.kind == "mask":
            return masked_logits(x, params)
        if self.kind == "renorm":
            return renormalised(x, self.keep(x, params))
        if self.order == "top_k_first":
            x = renormalised(x, keep_mask(("top_k",), x, params))
        dist = sample_distribution(x, self.keep(x, params))
        return dist if indices is None else dist[indices.long().cpu()]


_SAMPLE_TAIL = "bool deterministic, Generator? gen) -> ()"
OP_CASES = [
    OpCase(
        "top_k_renorm", "renorm", ("top_k",), "top_k_renorm_probs", "top_k_renorm_probs",
        "(Tensor probs, Tensor(a!) renorm_probs, Tensor? maybe_top_k_arr, int top_k_val) -> ()",
    ),
    OpCase(
        "top_p_renorm", "renorm", ("top_p",), "top_p_renorm_probs", "top_p_renorm_probs",
        "(Tensor probs, Tensor(a!) renorm_probs, Tensor? maybe_top_p_arr, float top_p_val) -> ()",
    ),
    OpCase(
        "top_k_mask_logits", "mask", ("top_k",), "top_k_mask_logits", "top_k_mask_logits",
        "(Tensor logits, Tensor(a!) mask_logits, Tensor? maybe_top_k_arr, int top_k_val) -> ()",
    ),
    OpCase(
        "sampling", "sample", (), "sampling_from_probs", "sampling_from_probs",
        "(Tensor probs, Tensor(a!) output, Tensor? maybe_indices, " + _SAMPLE_TAIL,
    ),
    OpCase(
        "top_k_sampling", "sample", ("top_k",), "top_k_sampling_from_probs",
        "top_k_sampling_from_probs",
        "(Tensor probs, Tensor(a!) output, Tensor? maybe_indices, Tensor? maybe_top_k_arr, "
        "int top_k_val, " + _SAMPLE_TAIL,
    ),
    OpCase(
        "top_p_sampling", "sample", ("top_p",), "top_p_sampling_from_probs",
        "top_p_sampling_from_probs",
        "(Tensor probs, Tensor(a!) output, Tensor? maybe_indices, Tensor? maybe_top_p_arr, "
        "float top_p_val, " + _SAMPLE_TAIL,
    ),
    OpCase(
        "min_p_sampling", "sample", ("min_p",), "min_p_sampling_from_probs",
        "min_p_sampling_from_probs",
        "(Tensor probs, Tensor(a!) output, Tensor? maybe_indices, Tensor? maybe_min_p_arr, "
        "float min_p_val, " + _SAMPLE_TAIL,
    ),
    OpCase(
        "joint_sampling", "sample", ("top_k", "top_p"), "top_k_top_p_sampling_from_probs",
        "top_k_top_p_sampling_from_probs",
        "(Tensor probs, Tensor(a!) output, Tensor? maybe_indices, Tensor? maybe_top_k_arr, "
        "float top_k_val, Tensor? maybe_top_p_arr, float top_p_val, " + _SAMPLE_TAIL,
        order="joint",
    ),
    # SGLang's order: top-k renormalised first (top_k_renorm_probs), then top-p sampling.
    OpCase(
        "top_k_first_sampling", "sample", ("top_k", "top_p"),
        "top_k_top_p_sampling_from_probs", order="top_k_first",
    ),
]  # fmt: skip
OP_CASE = {case.id: case for case in OP_CASES}
RAW_OP_CASES = [case for case in OP_CASES if case.op is not None]  # one per registered op
SAMPLERS = [case for case in OP_CASES if case.kind == "sample"]

# ----------------------------------------------------------------------------- checks


def assert_matches_distribution(
    samples: torch.Tensor, expected: torch.Tensor, what: str, alpha: float = ALPHA
) -> None:
    """samples: token ids; expected: probabilities over the vocab (zeros = forbidden).
    alpha: the false-alarm rate (suites with many tests pass a smaller one)."""
    expected = expected.double().cpu().numpy()
    expected = expected / expected.sum()
    ids = samples.long().cpu().numpy()
    assert ids.size == 0 or (ids.min() >= 0 and ids.max() < expected.size), (
        f"{what}: token ids outside [0, {expected.size}): [{ids.min()}, {ids.max()}]"
    )
    counts = np.bincount(ids, minlength=expected.size).astype(np.float64)
    forbidden = counts[expected == 0].sum()
    assert forbidden == 0, f"{what}: {int(forbidden)} samples of tokens with probability 0"
    n = counts.sum()
    support = np.flatnonzero(expected > 0)
    exp_counts = expected[support] * n
    obs = counts[support]
    # Pool tokens with small expected counts so the chi-square approximation holds.
    order = np.argsort(exp_counts)
    exp_sorted, obs_sorted = exp_counts[order], obs[order]
    bins_e, bins_o, acc_e, acc_o = [], [], 0.0, 0.0
    for e, o in zip(exp_sorted, obs_sorted):
        acc_e += e
        acc_o += o
        if acc_e >= 5:
            bins_e.append(acc_e)
            bins_o.append(acc_o)
            acc_e = acc_o = 0.0
    if acc_e > 0:
        if bins_e:
            bins_e[-1] += acc_e
            bins_o[-1] += acc_o
        else:
            bins_e, bins_o = [acc_e], [acc_o]
    if len(bins_e) < 2:
        return  # a single allowed bin: the forbidden-token check above is the whole test
    p_value = stats.chisquare(bins_o, bins_e).pvalue
    assert p_value > alpha, (
        f"{what}: chi-square p-value {p_value:.2e} <= {alpha} ({len(bins_e)} bins)"
    )


def assert_rows_match_distribution(
    ids: torch.Tensor, rows: torch.Tensor, dist: torch.Tensor, what: str, alpha: float = ALPHA
) -> None:
    """ids[i] was drawn from probs row rows[i], whose distribution is dist[rows[i]]:
    one chi-square test per distinct probs row (false-alarm rate alpha each)."""
    ids, rows = ids.cpu(), rows.long().cpu()
    for r in torch.unique(rows).tolist():
        assert_matches_distribution(ids[rows == r], dist[r], f"{what}, probs row {r}", alpha)


def assert_renorm_matches(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    """Zeros exactly where the contract puts them, the kept values to 1e-6."""
    got, want = got.cpu(), want.cpu()
    assert got.shape == want.shape and got.dtype == torch.float32, f"{what}: {got.shape}"
    bad_support = (got != 0) != (want != 0)
    assert not bool(bad_support.any()), (
        f"{what}: support differs at {bad_support.nonzero()[:5].tolist()} "
        f"(got {got[bad_support][:5].tolist()}, want {want[bad_support][:5].tolist()})"
    )
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5, msg=lambda m: f"{what}: {m}")


def assert_mask_matches(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    """Masked logits exactly: kept logits unchanged, -inf elsewhere."""
    got, want = got.cpu(), want.cpu()
    differ = ~((got == want) | (got.isnan() & want.isnan()))
    assert not bool(differ.any()), (
        f"{what}: differs at {differ.nonzero()[:5].tolist()} "
        f"(got {got[differ][:5].tolist()}, want {want[differ][:5].tolist()})"
    )


# ----------------------------------------------------------------------------- fused op


def fused_rows(value, rows: int, dtype: torch.dtype) -> torch.Tensor:
    """A fused-op parameter (scalar or per-row tensor) as the CPU per-row tensor."""
    if isinstance(value, torch.Tensor):
        return value.cpu().to(dtype)
    return torch.full((rows,), value, dtype=dtype)


def fused_distribution(x: torch.Tensor, top_k, top_p, min_p) -> torch.Tensor:
    """float64 (rows, vocab): what each row of the fused op samples from (its kept
    weights renormalised; a row with nothing kept gives token 0 with probability 1).
    Parameters: scalars or per-row tensors, any values (the op's definition)."""
    x = x.cpu().float()
    rows = x.size(0)
    keep = ref.fused_keep(
        x,
        fused_rows(top_k, rows, torch.int32),
        fused_rows(top_p, rows, torch.float32),
        fused_rows(min_p, rows, torch.float32),
    )
    kept = torch.where(keep, x.double(), 0.0)
    empty = ~keep.any(dim=-1)
    kept[empty, 0] = 1.0
    return kept / kept.sum(-1, keepdim=True)


def fused_reference_tokens(x, top_k, top_p, min_p, seeds, positions) -> torch.Tensor:
    """int64 (rows,): the CPU reference's tokens for these arguments (float64 keys)."""
    x = x.cpu().float()
    rows = x.size(0)
    return ref.fused_sample(
        x,
        fused_rows(top_k, rows, torch.int32),
        fused_rows(top_p, rows, torch.float32),
        fused_rows(min_p, rows, torch.float32),
        fused_rows(seeds, rows, torch.int64),
        fused_rows(positions, rows, torch.int64),
    )
