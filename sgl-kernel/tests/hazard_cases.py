"""Hostile and careless inputs for every sgl_kernel op (issue 7), and their driver.

Each case builds its input on the CPU, runs the op on the device, and checks the result
against the input contract (``sgl_kernel.testing``: exact renorm support and values,
exact masks, sampled tokens inside the support and at the right frequencies by
chi-square) and, where given, against a hand-written answer. On a GPU the same case
also runs on the CPU reference and the two answers are compared.

A case can hang a GPU or fault it (stickily: the process is then dead), so the
pytest side (test_hazards.py) runs them in child processes with a timeout, and
compute-sanitizer runs them through sanitize_hazards.py. Driver protocol, one line
each on stdout: ``READY``, then per case ``START <name>`` and ``RESULT <json>``;
``STICKY`` before exiting when the device no longer works after a case.

    python hazard_cases.py --device cuda [--list] [--no-parity] [CASE ...]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import traceback
from dataclasses import dataclass
from typing import Callable

import torch

import sgl_kernel  # registers the ops
from sgl_kernel import sampling_reference as ref
from sgl_kernel.testing import (
    OP_CASE,
    OP_CASES,
    SAMPLERS,
    Params,
    assert_mask_matches,
    assert_matches_distribution,
    assert_renorm_matches,
    assert_rows_match_distribution,
    fused_distribution,
    fused_reference_tokens,
    is_gpu,
    synchronize,
)

INF, NAN = float("inf"), float("nan")
VOCABS = [1, 3, 4, 4095, 4096, 4097]
GPU_VOCABS = [32768, 128256, 131072]  # too slow for the CPU reference in CI
# About 1000 chi-square tests per device: 1e-6 each keeps a false alarm of the whole
# suite near 1e-3 (gross errors still give p-values near 0).
ALPHA = 1e-6
# Run-wide switches: the sanitizer run skips the CPU comparison and draws less.
OPTIONS = {"parity": True, "draw_scale": 1.0}


@dataclass
class Hazard:
    name: str
    family: str  # CPU runs batch one child per family: mask, renorm, sample, args, logits
    run: Callable[[str], dict]  # device -> small JSON summary; AssertionError = violation
    gpu_only: bool = False


CASES: dict[str, Hazard] = {}


def _add(hazard: Hazard) -> None:
    assert hazard.name not in CASES, hazard.name
    CASES[hazard.name] = hazard


# ----------------------------------------------------------------------------- inputs


def place(x: torch.Tensor, device: str, offset: int = 0) -> torch.Tensor:
    """x on the device; offset > 0: a contiguous view whose data pointer is `offset`
    elements past an allocation (not 16-byte aligned), as buf[1:].view(...) gives."""
    if offset == 0:
        return x.to(device)
    buf = torch.zeros(x.numel() + offset, dtype=x.dtype, device=device)
    view = buf[offset:].view(x.shape)
    view.copy_(x)
    assert view.is_contiguous() and view.data_ptr() % 16 != 0
    return view


def peaked(batch: int, vocab: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(batch, vocab, generator=g) * 3, -1)


def hostile_probs(vocab: int, seed: int = 0) -> torch.Tensor:
    """One row per hazard: +inf, NaN, negatives, -inf entries; all -inf, all NaN,
    zeros with a tiny negative; subnormals only; unnormalised large and small rows;
    a clean row last."""
    x = peaked(12, vocab, seed)
    last = vocab - 1
    x[0, min(3, last)] = INF
    x[1, ::3] = NAN
    x[1, last] = 0.5 if vocab > 1 else NAN
    x[2, ::2] = -x[2, ::2]
    x[3, ::2] = -INF
    x[4] = -INF
    x[5] = NAN
    x[6] = 0.0
    x[6, 0] = -1e-9
    x[7] = 0.0
    x[7, 0] = -1e-9
    x[7, min(7, last)] = 1e-9
    x[8] = 0.0
    x[8, : min(vocab, 5)] = torch.tensor([1e-45, 2e-45, 3e-44, 1e-40, 0.0])[: min(vocab, 5)]
    x[9] *= 1000.0
    x[10] *= 1e-3
    return x


def hostile_logits(vocab: int, seed: int = 0) -> torch.Tensor:
    """One row per hazard for top_k_mask_logits: one +inf, several +inf, all +inf,
    NaN entries, all NaN, all -inf, some -inf, ties; a clean row last."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(10, vocab, generator=g) * 3
    last = vocab - 1
    x[0, min(5, last)] = INF
    x[1, ::7] = INF
    x[2] = INF
    x[3, ::3] = NAN
    x[4] = NAN
    x[5] = -INF
    x[6, ::2] = -INF
    x[7] = torch.round(x[7])  # many ties
    x[8, ::5] = NAN
    x[8, 1::5] = INF
    return x


def op_input(case, vocab, seed=0):
    return hostile_logits(vocab, seed) if case.kind == "mask" else hostile_probs(vocab, seed)


# ----------------------------------------------------------------------------- op cases


def _run(case, x, params, device, rows, offset, out_offset, raw):
    xd = place(x, device, offset)
    pd = params.to(device)
    if case.kind == "sample":
        gen = torch.Generator(device=device).manual_seed(1234)
        idx = rows.to(torch.int32).to(device)
        if raw:
            out = case.run_raw(xd, pd, indices=idx, gen=gen)
        else:
            out = case.call(xd, pd, indices=idx, generator=gen)
    elif raw:
        out = place(torch.full_like(x, 7.0), device, out_offset)
        case.run_raw(xd, pd, out=out)
    else:
        out = case.call(xd, pd)
    synchronize(device)
    return out.cpu()


def _check(case, x, params, got, rows, want, what):
    expected = case.expected(x, params)
    if case.kind == "renorm":
        assert_renorm_matches(got, expected, what)
    elif case.kind == "mask":
        assert_mask_matches(got, expected, what)
    else:
        assert got.dtype == torch.int32 and got.shape == rows.shape, f"{what}: {got.shape}"
        assert_rows_match_distribution(got, rows, expected, what, ALPHA)
    # Hand-written answers for some rows, independent of the oracle.
    for row, values in (want or {}).items():
        values = torch.tensor(values, dtype=torch.float64)
        if case.kind == "sample":
            assert_matches_distribution(
                got[rows == row], values, f"{what} row {row} (by hand)", ALPHA
            )
        elif case.kind == "renorm":
            assert_renorm_matches(got[row : row + 1], values.float()[None], f"{what} row {row}")
        else:
            assert_mask_matches(got[row : row + 1], values.float()[None], f"{what} row {row}")


def _summary(case, got):
    if case.kind == "sample":
        return {"ids": got[:8].tolist(), "n": got.numel()}
    return {"shape": list(got.shape), "row_sums": got.double().nan_to_num().sum(-1)[:12].tolist()}


def op_hazard(
    name,
    case_id,
    build,
    params,
    *,
    draws=64,
    indices=None,
    offset=0,
    out_offset=0,
    raw=False,
    want=None,
    gpu_only=False,
    family=None,
):
    """The op of OP_CASE[case_id] on build() (a CPU tensor) with `params`.

    Samplers draw `draws` times from every probs row (through indices), or once per
    entry of `indices`. want: {probs row: its exact distribution / output row}."""
    case = OP_CASE[case_id]

    def run(device):
        x = build()
        n = max(1, int(draws * OPTIONS["draw_scale"]))
        rows = indices if indices is not None else torch.arange(x.size(0)).repeat_interleave(n)
        got = _run(case, x, params, device, rows, offset, out_offset, raw)
        _check(case, x, params, got, rows, want, f"{name} on {device}")
        if device != "cpu" and OPTIONS["parity"]:
            on_cpu = _run(case, x, params, "cpu", rows, offset, out_offset, raw)
            _check(case, x, params, on_cpu, rows, want, f"{name} on cpu")
            if case.kind == "renorm":
                assert_renorm_matches(got, on_cpu, f"{name}: {device} vs cpu")
            elif case.kind == "mask":
                assert_mask_matches(got, on_cpu, f"{name}: {device} vs cpu")
        return _summary(case, got)

    fam = family or {"sample": "sample", "renorm": "renorm", "mask": "mask"}[case.kind]
    _add(Hazard(name, fam, run, gpu_only))


def error_hazard(name, call, pattern, family="args"):
    """call(device) must raise an error whose 'Type: message' matches `pattern`."""

    def run(device):
        devices = [device] + (["cpu"] if device != "cpu" and OPTIONS["parity"] else [])
        for d in devices:
            try:
                call(d)
                synchronize(d)
            except Exception as err:  # the contract: a clear error, whatever its type
                text = f"{type(err).__name__}: {err}"
                assert re.search(pattern, text), f"{name} on {d}: wrong error: {text[:300]}"
                continue
            raise AssertionError(f"{name} on {d}: no error, expected /{pattern}/")
        return {"raised": True}

    _add(Hazard(name, family, run))


# ----------------------------------------------------------------------------- the cases

_DEFAULT = Params(top_k=3, top_p=0.9, min_p=0.1)

# Every op on a batch of hostile rows, at every vocab size (padding lanes, one token,
# multiples of the kernels' 4096-element tiles and their neighbours).
for _case in OP_CASES:
    for _v in VOCABS + GPU_VOCABS:
        op_hazard(
            f"{_case.id}-hostile-rows-v{_v}",
            _case.id,
            lambda c=_case, v=_v: op_input(c, v),
            _DEFAULT,
            draws=64 if _v <= 4097 else 8,
            gpu_only=_v in GPU_VOCABS,
        )

# Issue 7's table, with hand-written answers.
op_hazard(
    "top_k_sampling-unnormalised-3-5-2-k1",
    "top_k_sampling",
    lambda: torch.tensor([[3.0, 5.0, 2.0]]),
    Params(top_k=1),
    draws=2000,
    want={0: [0, 1, 0]},
)
op_hazard(
    "joint_sampling-unnormalised-3-5-2-k1",
    "joint_sampling",
    lambda: torch.tensor([[3.0, 5.0, 2.0]]),
    Params(1, 1.0),
    draws=2000,
    want={0: [0, 1, 0]},
)
op_hazard(
    "top_k_first-unnormalised-3-5-2-k1",
    "top_k_first_sampling",
    lambda: torch.tensor([[3.0, 5.0, 2.0]]),
    Params(1, 1.0),
    draws=2000,
    want={0: [0, 1, 0]},
)
for _case in SAMPLERS:
    op_hazard(
        f"{_case.id}-unnormalised-1-1-half-half",
        _case.id,
        lambda: torch.tensor([[1.0, 1.0]]),
        Params(2, 1.0, 0.0),
        draws=20000,
        want={0: [0.5, 0.5]},
    )
    op_hazard(
        f"{_case.id}-unnormalised-3-5-2",
        _case.id,
        lambda: torch.tensor([[3.0, 5.0, 2.0]]),
        Params(3, 1.0, 0.0),
        draws=20000,
        want={0: [0.3, 0.5, 0.2]},
    )
    op_hazard(
        f"{_case.id}-zeros-and-tiny-negative",
        _case.id,
        lambda: torch.tensor([[-1e-9] + [0.0] * 9]),
        _DEFAULT,
        draws=200,
        want={0: [1] + [0] * 9},
    )
    op_hazard(
        f"{_case.id}-tiny-negative-and-tiny-positive",
        _case.id,
        lambda: torch.tensor([[-1e-9] + [0.0] * 6 + [1e-9, 0.0, 0.0]]),
        _DEFAULT,
        draws=200,
        want={0: [0] * 7 + [1, 0, 0]},
    )
    op_hazard(
        f"{_case.id}-posinf-makes-the-row-invalid-token-0",
        _case.id,
        lambda: torch.tensor([[0.5, INF, 0.5]]),
        Params(3, 1.0, 0.0),
        draws=200,
        want={0: [1, 0, 0]},
    )
    op_hazard(
        f"{_case.id}-overflowing-total-makes-the-row-invalid-token-0",
        _case.id,
        lambda: torch.tensor([[1.0, 3e38, 3e38]]),
        Params(3, 1.0, 0.0),
        draws=200,
        want={0: [1, 0, 0]},
    )
    op_hazard(
        f"{_case.id}-negative-and-nan-are-weight-0",
        _case.id,
        lambda: torch.tensor([[-1.0, 0.5, NAN, 0.5, -INF]]),
        Params(4, 1.0, 0.0),
        draws=20000,
        want={0: [0, 0.5, 0, 0.5, 0]},
    )
    op_hazard(
        f"{_case.id}-subnormal-total-is-invalid-token-0",
        _case.id,
        lambda: torch.tensor([[1.0, 2.0, 0.0]], dtype=torch.float64).mul(2**-149).float(),
        Params(3, 1.0, 0.0),
        draws=200,
        want={0: [1, 0, 0]},  # a total below the smallest normal float32: invalid, token 0
    )
    op_hazard(
        f"{_case.id}-all-neginf-row-gives-token-0",
        _case.id,
        lambda: torch.full((2, 4096), -INF),
        _DEFAULT,
        draws=50,
        want={0: [1] + [0] * 4095},
    )
for _case_id, _p in [
    ("top_p_sampling", Params(top_p=0.5)),
    ("joint_sampling", Params(3, 0.5)),
    ("top_k_first_sampling", Params(3, 0.5)),
]:
    # top-p is relative to the row total S: 2 = 0.5 * 4 lies above tokens 1 and 2.
    op_hazard(
        f"{_case_id}-top-p-relative-to-total-2-1-1",
        _case_id,
        lambda: torch.tensor([[2.0, 1.0, 1.0]]),
        _p,
        draws=500,
        want={0: [1, 0, 0]},
    )
op_hazard(
    "top_p_sampling-top-p-relative-to-total-1-half-half",
    "top_p_sampling",
    lambda: torch.tensor([[1.0, 0.5, 0.5]]),
    Params(top_p=0.75),
    draws=20000,
    want={0: [0.5, 0.25, 0.25]},
)
op_hazard(
    "min_p_sampling-unnormalised-4-2-1",
    "min_p_sampling",
    lambda: torch.tensor([[4.0, 2.0, 1.0]]),
    Params(min_p=0.5),
    draws=20000,
    want={0: [2 / 3, 1 / 3, 0]},
)
op_hazard(
    "top_k_renorm-posinf",
    "top_k_renorm",
    lambda: torch.tensor([[0.25, INF, 0.5, 0.25]]),
    Params(top_k=2),
    want={0: [0, 0, 0, 0]},  # a +inf entry makes the row invalid: all zero
)
op_hazard(
    "top_p_renorm-posinf",
    "top_p_renorm",
    lambda: torch.tensor([[0.25, INF, 0.5, 0.25]]),
    Params(top_p=0.5),
    want={0: [0, 0, 0, 0]},  # a +inf entry makes the row invalid: all zero
)
op_hazard(
    "top_p_renorm-p1-nan",
    "top_p_renorm",
    lambda: torch.tensor([[0.25, NAN, 0.5, 0.25]]),
    Params(top_p=1.0),
    want={0: [0.25, 0, 0.5, 0.25]},
)
op_hazard(
    "top_k_renorm-unnormalised",
    "top_k_renorm",
    lambda: torch.tensor([[3.0, 5.0, 2.0]]),
    Params(top_k=2),
    want={0: [0.375, 0.625, 0]},
)
op_hazard(
    "top_p_renorm-unnormalised",
    "top_p_renorm",
    lambda: torch.tensor([[2.0, 1.0, 1.0, -1.0]]),
    Params(top_p=0.75),
    want={0: [0.5, 0.25, 0.25, 0]},
)
op_hazard(
    "top_k_mask_logits-posinf-k2",
    "top_k_mask_logits",
    lambda: torch.tensor([[1.0, INF, 3.0, 2.0]]),
    Params(top_k=2),
    want={0: [-INF, INF, 3.0, -INF]},
)
op_hazard(
    "top_k_mask_logits-nan-never-kept",
    "top_k_mask_logits",
    lambda: torch.tensor([[NAN, 1.0, NAN, 0.0]]),
    Params(top_k=3),
    want={0: [-INF, 1.0, -INF, 0.0]},
)
for _v in [4095, 4096, 4097, 32768, 131072]:
    op_hazard(
        f"top_k_mask_logits-all-neginf-v{_v}",
        "top_k_mask_logits",
        lambda v=_v: torch.full((3, v), -INF),
        Params(top_k=50),
        want={0: [-INF] * _v},
        gpu_only=_v > 4097,
    )
    op_hazard(
        f"top_k_mask_logits-posinf-v{_v}",
        "top_k_mask_logits",
        lambda v=_v: torch.randn(2, v).index_fill_(1, torch.tensor([v // 2]), INF),
        Params(top_k=5),
        gpu_only=_v > 4097,
    )
    for _case_id in ("top_k_renorm", "top_p_renorm"):
        op_hazard(
            f"{_case_id}-posinf-v{_v}",
            _case_id,
            lambda v=_v: peaked(2, v, 1).index_fill_(1, torch.tensor([v // 3]), INF),
            Params(top_k=20, top_p=0.7),
            gpu_only=_v > 4097,
        )

# One-token vocabulary and empty batches.
for _case in OP_CASES:
    _one = torch.tensor([[0.7], [NAN], [INF], [-INF], [0.0], [-2.0]])
    op_hazard(f"{_case.id}-vocab-1", _case.id, lambda x=_one: x.clone(), _DEFAULT, draws=16)
    op_hazard(f"{_case.id}-empty-batch", _case.id, lambda: torch.empty(0, 4096), _DEFAULT)
    if _case.kind == "sample":
        op_hazard(
            f"{_case.id}-empty-indices",
            _case.id,
            lambda: peaked(3, 100, 0),
            _DEFAULT,
            indices=torch.empty(0, dtype=torch.long),
        )

# Misaligned contiguous views, through the wrapper and through the raw op (input and,
# for renorm and mask, output).
for _case in OP_CASES:
    for _off in (1, 3):
        _build = lambda c=_case: op_input(c, 4096, 5)[-4:].clone()  # noqa: E731
        op_hazard(
            f"{_case.id}-misaligned-input-{4 * _off}B", _case.id, _build, _DEFAULT, offset=_off
        )
        if _off == 1:
            op_hazard(
                f"{_case.id}-misaligned-input-{4 * _off}B-v4097",
                _case.id,
                lambda c=_case: op_input(c, 4097, 6),
                _DEFAULT,
                offset=_off,
            )
        if _case.op is not None:
            op_hazard(
                f"{_case.id}-raw-misaligned-input-{4 * _off}B",
                _case.id,
                _build,
                _DEFAULT,
                offset=_off,
                raw=True,
            )
        if _case.kind != "sample":
            op_hazard(
                f"{_case.id}-raw-misaligned-output-{4 * _off}B",
                _case.id,
                _build,
                _DEFAULT,
                out_offset=_off,
                raw=True,
            )
            op_hazard(
                f"{_case.id}-raw-misaligned-both-{4 * _off}B",
                _case.id,
                _build,
                _DEFAULT,
                offset=_off,
                out_offset=4 - _off,
                raw=True,
            )

# top_k of any size: values >= vocab keep everything, on every path, without overflow;
# non-finite values are a clear error naming the argument.
_HUGE = {"2e31": 2**31, "2e53+1": 2**53 + 1, "2e63-1": 2**63 - 1, "2e64": 2**64}
for _case in OP_CASES:
    if "top_k" not in _case.filters:
        continue
    for _label, _k in _HUGE.items():
        _p = Params(_k, 0.9, 0.1)
        op_hazard(
            f"{_case.id}-top_k-{_label}",
            _case.id,
            lambda c=_case: op_input(c, 300, 2),
            _p,
            family="args",
        )
        if _case.op is None:
            continue
        if _k >= 2**63 and _case.op != "top_k_top_p_sampling_from_probs":
            # an int64 schema argument cannot hold it: the dispatcher's error names it
            error_hazard(
                f"{_case.id}-raw-top_k-{_label}",
                lambda d, c=_case, p=_p: c.run_raw(op_input(c, 300, 2).to(d), p),
                r"top_k_val",
            )
        else:
            op_hazard(
                f"{_case.id}-raw-top_k-{_label}",
                _case.id,
                lambda c=_case: op_input(c, 300, 2),
                _p,
                raw=True,
                family="args",
            )
    for _label, _k in {"inf": INF, "nan": NAN, "-inf": -INF}.items():
        _p = Params(_k, 0.9, 0.1)
        error_hazard(
            f"{_case.id}-top_k-{_label}",
            lambda d, c=_case, p=_p: c.call(op_input(c, 300, 2).to(d), p),
            r"RuntimeError: .*top_k",
        )
        if _case.op is not None:
            error_hazard(
                f"{_case.id}-raw-top_k-{_label}",
                lambda d, c=_case, p=_p: c.run_raw(op_input(c, 300, 2).to(d), p),
                r"RuntimeError: .*top_k_val",
            )

# Per-row parameters out of range are clamped, never rejected, and never hang: rows 0-4
# keep only the most likely token; row 5 keeps its top 3 / everything (p 2 -> 1, min_p
# -1 -> 0); row 6 has huge / infinite values.
_ROWS = dict(
    top_k=torch.tensor([0, -5, 1, 0, -1, 3, 2**31 - 1], dtype=torch.int32),
    top_p=torch.tensor([0.0, NAN, -1.0, 0.0, NAN, 2.0, INF]),
    min_p=torch.tensor([NAN, 2.0, 1.0, 5.0, NAN, -1.0, -INF]),
)
for _case in OP_CASES:
    if not _case.filters:
        continue
    _p = Params(**{n: _ROWS[n] for n in _case.filters})
    _x = lambda c=_case: torch.log(peaked(7, 300, 0)) if c.kind == "mask" else peaked(7, 300, 0)  # noqa: E731
    _best = peaked(7, 300, 0).argmax(-1)
    _want = {r: torch.nn.functional.one_hot(_best[r], 300).tolist() for r in range(5)}
    if _case.kind == "sample":
        op_hazard(
            f"{_case.id}-per-row-params-out-of-range",
            _case.id,
            _x,
            _p,
            draws=32,
            want=_want,
            family="args",
        )
    elif _case.kind == "renorm":
        op_hazard(
            f"{_case.id}-per-row-params-out-of-range", _case.id, _x, _p, want=_want, family="args"
        )
    else:
        _logits = torch.log(peaked(7, 300, 0))
        _only = torch.full_like(_logits, -INF).scatter_(1, _best[:, None], _logits.amax(-1, True))
        _want = {r: _only[r].tolist() for r in range(5)}
        op_hazard(
            f"{_case.id}-per-row-params-out-of-range", _case.id, _x, _p, want=_want, family="args"
        )

# indices with distinct per-row parameters (every row's filter differs; output rows
# visit the probs rows out of order and repeatedly).
_IDX = torch.tensor([5, 0, 3, 3, 1, 4, 2, 0, 5, 1] * 40)
_DISTINCT = Params(
    top_k=torch.tensor([1, 2, 5, 300, 0, 7], dtype=torch.int32),
    top_p=torch.tensor([0.1, 0.5, 1.0, 0.9, 0.3, NAN]),
    min_p=torch.tensor([0.0, 0.9, 0.05, 1.0, 0.5, 0.2]),
)
for _case in SAMPLERS:
    op_hazard(
        f"{_case.id}-indices-distinct-row-params",
        _case.id,
        lambda: hostile_probs(300)[[11, 9, 0, 2, 10, 1]].clone(),
        _DISTINCT,
        indices=_IDX,
        family="args",
    )


# The fused seeded op (issue 9): hostile rows (12 per call) with per-row parameters that
# mix ordinary and edge values, each row drawn `draws` times with its own seed. Checked:
# every token inside its row's exact kept set (token 0 when it is empty), frequencies
# per probs row by chi-square, and on a GPU agreement with the CPU reference on >= 99.5%
# of draws (float32 keys there: near-ties may differ).
_FUSED_ROWS = dict(
    top_k=torch.tensor(
        [3, 0, 5, 1 << 30, -2, 40, 2, 7, 10, 1 << 30, 4, 2**31 - 1], dtype=torch.int32
    ),
    top_p=torch.tensor([0.9, 1.0, NAN, 0.5, 1.0, -1.0, 2.0, 0.99, 0.3, 1.0, 0.7, 0.8]),
    min_p=torch.tensor([0.1, 0.0, 0.05, NAN, 1.5, 0.0, -1.0, 0.0, 0.02, 1.0, 0.3, 0.01]),
)
_FUSED_SEEDS = {"ordinary": (1, 5), "int64-edges": (-(2**63), 2**63 - 1)}


def fused_hazard(name, vocab, draws, *, offset=0, seeds="ordinary", gpu_only=False):
    def run(device):
        x = hostile_probs(vocab, 3)
        n = max(1, int(draws * OPTIONS["draw_scale"]))
        rows = torch.arange(x.size(0)).repeat_interleave(n)
        args = {k: v[rows] for k, v in _FUSED_ROWS.items()}
        base, position = _FUSED_SEEDS[seeds]
        args["seeds"] = torch.arange(rows.numel(), dtype=torch.int64) * 0x9E3779B9 + base
        args["positions"] = torch.full((rows.numel(),), position, dtype=torch.int64)
        probs = place(x[rows].contiguous(), device, offset)
        dev_args = {k: v.to(device) for k, v in args.items()}
        got = sgl_kernel.top_k_top_p_min_p_sampling_from_probs(probs, **dev_args).cpu()
        synchronize(device)
        dist = fused_distribution(
            x, _FUSED_ROWS["top_k"], _FUSED_ROWS["top_p"], _FUSED_ROWS["min_p"]
        )
        assert_rows_match_distribution(got, rows, dist, f"{name} on {device}", ALPHA)
        if device != "cpu" and OPTIONS["parity"]:
            want = fused_reference_tokens(x[rows], **args)
            agree = float((got.long() == want).double().mean())
            assert agree >= 0.995, f"{name}: {device} agrees with the reference on {agree:.4f}"
        return {"ids": got[:8].tolist(), "n": got.numel()}

    _add(Hazard(name, "sample", run, gpu_only))


for _v in VOCABS + GPU_VOCABS:
    fused_hazard(
        f"fused-hostile-rows-v{_v}", _v, 64 if _v <= 4097 else 8, gpu_only=_v in GPU_VOCABS
    )
fused_hazard("fused-misaligned-probs-v4097", 4097, 16, offset=1)
fused_hazard("fused-int64-edge-seeds-v300", 300, 64, seeds="int64-edges")


# The from-logits op (issue 16): hostile rows, each with its own temperature and filter
# parameters, drawn `draws` times with distinct seeds; every dtype, layout and vocab class;
# large batches (the kernel's per-row split G is 1) and batch 1 (G > 1 from vocab 4097 up).
# Checked, against the reference's definition (sampling_reference.from_logits_sample,
# scaled_logits, logit_weights): greedy rows (temperature <= 0 / NaN, top_k == 1) give the
# exact first argmax of s (token 0 for top_k == 1 when top_p < 0 or min_p > 1); sampled
# rows give tokens of the kept set of w = exp(s - max s) and, by chi-square, the filtered
# distribution of w (testing.fused_distribution). The GPU computes exp with a few ulp of
# its own rounding, so there a row whose kept set changes under such rounding
# ("unstable") may also give the tokens at its boundary (LOGITS_ULPS below) and skips the
# chi-square; every other row is held to the exact set, and >= 99% of all draws must be
# the reference's own token (Gumbel keys that nearly tie may differ).
NO_K = 2**31 - 1
LOGIT_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
LOGITS_ULPS = 8  # relative slack, in float32 ulps of w, of the GPU's exp(s - max s)


def _logit_rows(vocab: int, dtype: torch.dtype, seed: int):
    """(x float32 [R, vocab] exactly representable in dtype, params {name: [R]}): one
    hostile row per entry, with the parameters that make it hostile."""
    g = torch.Generator().manual_seed(seed)
    big = torch.finfo(dtype).max
    last = vocab - 1
    ar = torch.arange(vocab, dtype=torch.float32)
    rows = []  # (row, temperature, top_k, top_p, min_p)

    def row(scale=3.0):
        return torch.randn(vocab, generator=g) * scale

    rows.append((row(), 1.0, NO_K, 1.0, 0.0))  # keep all
    r = row()
    r[min(5, last)] = INF
    r[::3] = NAN
    rows.append((r, 0.7, 50, 0.9, 0.05))  # one +inf (and NaN): only the +inf token
    r = row()
    r[::7] = INF
    rows.append((r, 1.3, NO_K, 1.0, 0.0))  # several +inf: uniform over them
    r = row()
    r[::3] = NAN
    rows.append((r, 1.0, 5, 0.9, 0.0))
    rows.append((torch.full((vocab,), NAN), 1.0, 3, 1.0, 0.0))  # all NaN: ties, ids 0-2
    rows.append((torch.full((vocab,), -INF), 0.9, NO_K, 0.5, 0.0))  # -inf only: top-p of a flat row
    r = row()
    r[::2] = -INF
    r[1::4] = NAN
    rows.append((r, 1.0, NO_K, 0.95, 0.1))
    rows.append((torch.round(row()), 1.0, 4, 1.0, 0.0))  # ties at the top-k cut: lower ids
    rows.append((torch.round(row()), 0.0, NO_K, 1.0, 0.0))  # greedy among ties: first max
    # Huge finite logits that overflow once divided by a tiny temperature: +-FLT_MAX.
    r = row().sign() * big * 0.9
    r[::5] = row()[::5]
    rows.append((r, 1e-36, NO_K, 1.0, 0.0))
    rows.append((r.clone(), 1e-36, 2, 0.9, 0.0))
    rows.append((row() * 1e30, 1.0, NO_K, 0.9, 0.0))  # huge but finite: w 0 or 1
    # Temperatures: subnormal (1/T overflows to +inf), +inf (s = 0 for finite x), 0,
    # negative, NaN, -inf (greedy).
    r = row()
    r[::4] = 0.0
    rows.append((r, 1e-40, NO_K, 1.0, 0.0))
    r = row()
    r[min(1, last)] = -INF
    r[2::6] = INF
    r[3::6] = NAN
    rows.append((r, INF, NO_K, 1.0, 0.0))
    for t in (0.0, -1.0, NAN, -INF):
        r = row()
        r[min(2, last) :: 9] = NAN
        rows.append((r, t, 2, -1.0, 2.0))  # greedy ignores the filters
    # Per-row parameters at edge values.
    for k, p, m in [
        (0, 1.0, 0.0), (-5, 0.9, 0.0), (1, 0.5, 0.5), (1, -0.5, 0.0), (1, 1.0, 1.5),
        (NO_K, -1.0, 0.0), (NO_K, 0.0, 0.0), (NO_K, NAN, 0.0), (NO_K, 2.0, 0.0),
        (NO_K, INF, 0.0), (NO_K, 1.0, 2.0), (NO_K, 1.0, NAN), (NO_K, 1.0, 1.0),
        (NO_K, 1.0, -1.0), (vocab, 0.8, 0.0), (vocab + 1, 1.0, 0.01), (2, NAN, NAN),
    ]:  # fmt: skip
        rows.append((row(), 1.0, k, p, m))
    # Distinct logits whose weights round to equal float32 values (w ties, s does not).
    rows.append((ar * 1e-9, 1.0, 2, 1.0, 0.0))
    rows.append((ar * 1e-9, 1.0, 1, 1.0, 0.0))  # top_k 1: the argmax of s, the last id
    rows.append((row(0.5), 0.8, 40, 0.9, 0.02))  # flat, all filters
    x = torch.stack([r for r, *_ in rows]).to(dtype).float()
    params = {
        "temperature": torch.tensor([t for _, t, *_ in rows], dtype=torch.float32),
        "top_k": torch.tensor([k for *_, k, _, _ in rows], dtype=torch.int32),
        "top_p": torch.tensor([p for *_, p, _ in rows], dtype=torch.float32),
        "min_p": torch.tensor([m for *_, m in rows], dtype=torch.float32),
    }
    return x, params


def _logits_layout(x: torch.Tensor, device: str, layout: str) -> torch.Tensor:
    """x (already in its dtype) on the device as a contiguous, misaligned (data pointer
    one element past an allocation), column-stride-2 or padded-row-stride view."""
    if layout == "contiguous":
        return x.to(device)
    if layout == "misaligned":
        return place(x, device, 1)
    if layout == "col-stride-2":
        view = torch.stack([x, torch.full_like(x, NAN)], dim=-1).to(device)[..., 0]
        assert view.stride(1) == 2
        return view
    assert layout == "padded", layout
    padded = torch.full((x.size(0), x.size(1) + 5), NAN, dtype=x.dtype, device=device)
    view = padded[:, 1 : x.size(1) + 1]
    view.copy_(x.to(device))
    return view


def logits_expectation(x: torch.Tensor, params: dict):
    """(greedy [R] bool, greedy token [R], kept [R, V], loose [R, V], dist [R, V]): the
    reference's answer per row. kept: the exact kept set of w (token 0 alone when empty);
    loose: kept plus the tokens that a few ulp of exp rounding in w could add; dist:
    the filtered distribution (one-hot for greedy rows)."""
    t, k, p, m = (params[n] for n in ("temperature", "top_k", "top_p", "min_p"))
    s = ref.scaled_logits(x, t)
    w = ref.logit_weights(s)
    first_max = torch.argmax(s, dim=-1)
    greedy = ~(t > 0) | (k == 1)
    token = torch.where(~(t > 0) | (~(p < 0) & ~(m > 1)), first_max, 0)
    keep = ref.fused_keep(w, k, p, m)
    keep[~keep.any(-1), 0] = True
    dist = fused_distribution(w, k, p, m)
    # Loose: rank and lower-ranks mass counted over the tokens that rank before token i
    # whatever the rounding (w clearly heavier, or the same s and a lower id: equal s give
    # equal w on every device), the total and min-p's threshold each eased by the slack,
    # w > 0 eased to "s - max s is above exp's underflow".
    eps = LOGITS_ULPS * 2.0**-24
    wd = w.double()
    asc, _ = torch.sort(wd, dim=-1)
    first_heavier = torch.searchsorted(asc, wd * (1 + 2 * eps), right=True)
    s_sorted, s_order = torch.sort(s, dim=-1, stable=True)
    run_start = torch.searchsorted(s_sorted, s_sorted, right=False)
    positions = torch.arange(s.size(-1)).expand_as(s)
    same_s_before = torch.empty_like(s_order).scatter_(1, s_order, positions - run_start)
    rank = w.size(-1) - first_heavier + same_s_before
    csum = torch.cat([torch.zeros_like(asc[:, :1]), asc.cumsum(-1)], dim=-1)
    total = csum[:, -1:]
    above = (total - csum.gather(1, first_heavier) + same_s_before * wd) * (1 - eps)
    pd = p.view(-1, 1).double()
    cut = rank >= k.view(-1, 1).long()
    cut |= (above > pd * total * (1 + eps)) & ~(pd >= 1)
    cut |= wd * (1 + eps) < (w.amax(-1, keepdim=True) * m.view(-1, 1)).double()
    d = s - s.amax(-1, keepdim=True)
    loose = ~cut & ((w > 0) | (d > -104.0)) | keep
    one_hot = torch.nn.functional.one_hot(token, x.size(-1)).bool()
    keep = torch.where(greedy.view(-1, 1), one_hot, keep)
    loose = torch.where(greedy.view(-1, 1), one_hot, loose)
    dist = torch.where(greedy.view(-1, 1), one_hot.double(), dist)
    return greedy, token, keep, loose, dist


_LOGIT_SEEDS = {"ordinary": (7, 3), "int64-edges": (-(2**63), 2**63 - 1)}


def _row_slice(v, i, device):
    return None if v is None else v[i : i + 1].to(device)


def _rows_cut_by_none_of(filters):
    """A build(): _logit_rows' rows that none of `filters` cuts, for passing them as None
    (the op's other path: without top-k and top-p, two launches)."""
    no_cut = {
        "top_k": lambda v, vocab: v >= vocab,
        "top_p": lambda v, vocab: ~(v < 1),
        "min_p": lambda v, vocab: ~(v > 0),
    }

    def build(vocab, dtype, seed):
        x, params = _logit_rows(vocab, dtype, seed)
        keep = torch.ones(x.size(0), dtype=torch.bool)
        for f in filters:
            keep &= no_cut[f](params[f], vocab)
        return x[keep], {n: v[keep] for n, v in params.items()}

    return build


def logits_hazard(
    name,
    vocab,
    draws,
    *,
    dtype="f32",
    layout="contiguous",
    seeds="ordinary",
    batch1=False,
    build=None,
    want=None,
    gpu_only=False,
    absent=(),
):
    """The from-logits op on build() (default: _logit_rows), each row drawn `draws`
    times with its own seed; batch1: one call per draw (a lone row: the split G > 1).
    want: {row: its exact distribution, by hand}. absent: filters passed as None (the
    rows must be ones they cut nothing of)."""

    def run(device):
        op = sgl_kernel.top_k_top_p_min_p_sampling_from_logits
        x, params = (build or _logit_rows)(vocab, LOGIT_DTYPES[dtype], vocab)
        n = max(1, int(draws * OPTIONS["draw_scale"]))
        rows = torch.arange(x.size(0)).repeat_interleave(n)
        args = {a: v[rows] for a, v in params.items()}
        base, position = _LOGIT_SEEDS[seeds]
        args["seeds"] = torch.arange(rows.numel(), dtype=torch.int64) * 0x9E3779B9 + base
        args["positions"] = torch.full((rows.numel(),), position, dtype=torch.int64)
        if seeds == "int64-edges":
            args["positions"][1::2] = -(2**63)
        args.update(dict.fromkeys(absent))
        xd = x.to(LOGIT_DTYPES[dtype])
        if batch1:
            got = torch.cat(
                [
                    op(
                        _logits_layout(xd[r : r + 1], device, layout),
                        **{a: _row_slice(v, i, device) for a, v in args.items()},
                    ).cpu()
                    for i, r in enumerate(rows.tolist())
                ]
            )
        else:
            dev_args = {a: None if v is None else v.to(device) for a, v in args.items()}
            got = op(_logits_layout(xd[rows], device, layout), **dev_args).cpu()
        synchronize(device)
        what = f"{name} on {device}"
        assert got.dtype == torch.int32 and got.shape == rows.shape, f"{what}: {got.shape}"
        greedy, token, keep, loose, dist = logits_expectation(x, params)
        ids = got.long()
        assert bool(((ids >= 0) & (ids < vocab)).all()), f"{what}: ids {ids.unique()[:8]}"
        wrong_greedy = greedy[rows] & (ids != token[rows])
        assert not bool(wrong_greedy.any()), (
            f"{what}: greedy rows {rows[wrong_greedy].unique().tolist()} gave "
            f"{ids[wrong_greedy][:5].tolist()}, want {token[rows[wrong_greedy]][:5].tolist()}"
        )
        exact = not is_gpu(device)
        stable = exact | (keep == loose).all(-1)  # rows whose kept set rounding cannot move
        allowed = torch.where(stable.view(-1, 1), keep, loose)[rows, ids]
        assert bool(allowed.all()), (
            f"{what}: tokens outside the kept set: rows {rows[~allowed].unique().tolist()}, "
            f"ids {ids[~allowed][:8].tolist()}"
        )
        checked = stable[rows] & ~greedy[rows]
        assert_rows_match_distribution(ids[checked], rows[checked], dist, what, ALPHA)
        if not exact and OPTIONS["parity"]:  # on the CPU the op is the reference itself
            # Rows whose kept set exp rounding can move (unstable) may legitimately differ
            # on every draw; the others differ only at float near-ties of the keys.
            ref_ids = ref.from_logits_sample(x[rows], *(args[a] for a in args))
            same = (ids == ref_ids)[stable[rows]]
            agree = float(same.double().mean()) if same.numel() else 1.0
            assert agree >= 0.99, f"{what}: agrees with the reference on {agree:.4f} of the draws"
        for row, values in (want or {}).items():
            values = torch.tensor(values, dtype=torch.float64)
            assert_matches_distribution(ids[rows == row], values, f"{what} row {row}", ALPHA)
        return {"ids": got[:8].tolist(), "n": got.numel(), "unstable": int((~stable).sum())}

    _add(Hazard(name, "logits", run, gpu_only))


for _v in VOCABS + GPU_VOCABS:
    logits_hazard(
        f"logits-hostile-rows-v{_v}", _v, 64 if _v <= 4097 else 8, gpu_only=_v in GPU_VOCABS
    )
for _dt in ("f16", "bf16"):
    for _v in (300, 4097):
        logits_hazard(f"logits-hostile-rows-{_dt}-v{_v}", _v, 32, dtype=_dt)
    logits_hazard(f"logits-hostile-rows-{_dt}-v128256", 128256, 8, dtype=_dt, gpu_only=True)
for _layout in ("misaligned", "col-stride-2", "padded"):
    for _dt in LOGIT_DTYPES:  # the CPU reads every layout alike: half widths on GPUs only
        logits_hazard(
            f"logits-{_layout}-{_dt}-v4097",
            4097,
            16,
            dtype=_dt,
            layout=_layout,
            gpu_only=_dt != "f32",
        )
    logits_hazard(f"logits-{_layout}-v131072", 131072, 8, layout=_layout, gpu_only=True)
# Batch 1: one row split over G = ceil(vocab / 4096) blocks on a GPU (one call per draw;
# the CPU, which does not split, runs the smallest).
logits_hazard("logits-batch-1-v4097", 4097, 1, batch1=True)
logits_hazard("logits-batch-1-v9000", 9000, 4, batch1=True, gpu_only=True)
logits_hazard(
    "logits-batch-1-padded-bf16-v8193",
    8193,
    4,
    dtype="bf16",
    layout="padded",
    batch1=True,
    gpu_only=True,
)
for _v in GPU_VOCABS:
    logits_hazard(f"logits-batch-1-v{_v}", _v, 8, batch1=True, gpu_only=True)
logits_hazard("logits-int64-edge-seeds-v300", 300, 64, seeds="int64-edges")
# Filters passed as None: greedy, min-p and keep-all rows only.
for _name, _absent, _v, _batch1, _draws in [
    ("logits-no-top-k-p-v4097", ("top_k", "top_p"), 4097, False, 64),
    ("logits-no-top-k-p-batch-1-v9000", ("top_k", "top_p"), 9000, True, 4),
    ("logits-no-filters-v128256", ("top_k", "top_p", "min_p"), 128256, False, 8),
]:
    logits_hazard(
        _name,
        _v,
        _draws,
        batch1=_batch1,
        build=_rows_cut_by_none_of(_absent),
        absent=_absent,
        gpu_only=_v > 4097,
    )
logits_hazard("logits-int64-edge-seeds-v128256", 128256, 8, seeds="int64-edges", gpu_only=True)


def _one_row(values, temperature, top_k=NO_K, top_p=1.0, min_p=0.0):
    row = torch.tensor([values], dtype=torch.float32)
    p = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "min_p": min_p}
    dtypes = {"top_k": torch.int32}
    return lambda v, dt, seed: (
        row,
        {n: torch.tensor([x], dtype=dtypes.get(n, torch.float32)) for n, x in p.items()},
    )


# Hand-written answers, independent of the reference.
for _label, _build, _want in [
    ("posinf-tokens-share-the-mass", _one_row([1, INF, NAN, -INF, INF, 2, INF], 1.0),
     [0, 1, 0, 0, 1, 0, 1]),
    ("subnormal-temperature-saturates-positive-logits", _one_row([1.0, 0.0, -1.0, 2.0], 1e-40),
     [1, 0, 0, 1]),
    ("infinite-temperature-is-uniform-over-finite", _one_row([5, -INF, 1, NAN, -2], INF),
     [1, 0, 1, 0, 1]),
    ("tiny-temperature-overflow-ties-at-float32-max",
     _one_row([3e38, 3e38, 1e38, -3e38, 1.0], 1e-36), [1, 1, 1, 0, 0]),
    ("top-p-half-of-0.1-0.2-0.3-0.4", _one_row([0.1, 0.2, 0.3, 0.4], 1.0, top_p=0.5),
     [0, 0, 0.3, 0.4]),
    ("min-p-0.4-of-0.1-0.2-0.3-0.4", _one_row([0.1, 0.2, 0.3, 0.4], 1.0, min_p=0.4),
     [0, 0.2, 0.3, 0.4]),
    ("nan-and-neginf-only-row-is-uniform", _one_row([NAN, -INF, NAN, NAN], 0.9), [1, 1, 1, 1]),
]:  # fmt: skip
    if "0.4" in _label:  # logits log(q): w proportional to q
        _x, _p = _build(4, torch.float32, 0)
        _build = lambda v, dt, seed, x=_x.log(), p=_p: (x, p)  # noqa: E731
    logits_hazard(f"logits-{_label}", len(_want), 2000, build=_build, want={0: _want})
logits_hazard(
    "logits-empty-batch",
    4096,
    1,
    build=lambda v, dt, seed: (
        torch.empty(0, v),
        {n: t[:0] for n, t in _logit_rows(4, dt, 0)[1].items()},
    ),
)


# ----------------------------------------------------------------------------- driver


def device_works(device: str) -> bool:
    try:
        synchronize(device)
        return int(torch.ones(4, device=device).sum()) == 4
    except Exception:
        return False


def run_case(name: str, device: str) -> dict:
    try:
        return {"name": name, "ok": True, **CASES[name].run(device)}
    except AssertionError as err:
        return {"name": name, "ok": False, "error": str(err)[:2000]}
    except Exception as err:
        tail = traceback.format_exc(limit=3)[-1000:]
        return {
            "name": name,
            "ok": False,
            "error": f"{type(err).__name__}: {err}"[:1500],
            "tb": tail,
        }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--list", action="store_true", help="print the case names and exit")
    ap.add_argument("--no-parity", action="store_true", help="skip the CPU comparison")
    ap.add_argument("names", nargs="*")
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(CASES))
        return 0
    OPTIONS["parity"] = not args.no_parity
    names = args.names or [n for n, h in CASES.items() if args.device != "cpu" or not h.gpu_only]
    print("READY", flush=True)
    for name in names:
        print(f"START {name}", flush=True)
        print("RESULT " + json.dumps(run_case(name, args.device)), flush=True)
        if args.device != "cpu" and not device_works(args.device):
            print("STICKY", flush=True)  # a fault left the device unusable: start afresh
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
