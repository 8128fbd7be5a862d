"""Issue #16's honest benchmark: what a decode step pays to turn logits into token ids,
and the sampling op alone against FlashInfer 0.7.2.post1's best kernel for each filter.

    PYTHONPATH=sgl-kernel/python:python python sgl-kernel/benchmark/bench_sampler_forward.py \
        --out DIR [--flashinfer 0.7.2.post1=INCLUDE_DIR] [--quick]

1. Sampler.forward, logits in, int32 ids out, exactly as a server calls it (temperature,
   sanitising, softmax or the fused from-logits op, greedy handling; no logprobs), on
   the Zipf-shaped logits of sglang.bench_sampler_synthetic.realistic_batch, one request
   type per batch: temperature only (SGLang's default request), top-p 0.9 only, top-k 50
   only, min-p 0.05 only, greedy only, the synthetic job's 8-setting menu, and the menu
   with one seeded request (its last row: t 0.8, top-p 0.9, sampling_seed 1234); batch
   1, 8, 64, 256 x vocab 32000, 128256, 151936; backends "flashinfer" (the kernels) and
   "pytorch" (the sort path). Next to them "one read": logits.amax(-1), the floor. Per
   case: device us, host us per call, peak extra memory of one call (MiB allocated above
   what was allocated before it) and the host syncs one call makes.
2. The op grid: filter (keep-all, top-p 0.9, top-k 50, min-p 0.05, top-k 50 + top-p 0.9)
   x batch x vocab x rows "peaked" (softmax(randn * 3)) and "flat" (softmax(randn *
   0.5)) for sgl_kernel's probs op (top_k_top_p_min_p_sampling_from_probs), its logits
   op (top_k_top_p_min_p_sampling_from_logits, fed randn * scale with temperature 1, so
   the same distribution; skipped with a note while this build lacks it), the Sampler's
   torch sort path (top_k_top_p_min_p_sampling_from_probs_torch), one read of the
   probabilities (amax), and FlashInfer's launchers for the same filter
   (flashinfer_launchers.cu built from the release's headers): sampling_from_probs and
   sampling_from_logits (keep-all); top_p_sampling_from_probs and AIR top-p renorm +
   sampling_from_probs (top-p); top_k_sampling_from_probs, the multi-CTA radix top-k
   renorm + sampling_from_probs and radix top-k mask logits + sampling_from_logits
   (top-k); min_p_sampling_from_probs (min-p); the joint kernel, radix top-k renorm +
   top_p_sampling_from_probs and radix top-k renorm + AIR top-p renorm +
   sampling_from_probs (top-k + top-p). "FlashInfer best" is the fastest of those in
   each cell. FlashInfer runs deterministic=true, like our ops.

Device time: the median of --runs calls after --warmup calls, timed with device events,
every call preceded by an L2-sized memset (cold L2) and a queued GPU sleep longer than
the call's host work (bench_timing.hiding_sleep_cycles), so the events bracket device
work and not the gaps between a Sampler step's many launches (a call that syncs with
the host cannot be hidden: its syncs are counted and shown). Host us is the CPU time of
one call while the GPU is busy (bench_sampling.host_us). On the CPU (--device cpu, and
--quick) everything runs at tiny sizes with host timers: only the plumbing is tested.

Writes to --out: forward.csv, op_grid.csv, report.md (the card, the date, the tree, the
method, both tables, the issue's targets met or missed), forward.png, op_grid.png. A
time budget (--budget-s) skips what is left, with a note, so the run always finishes
and writes its report.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Same folder: FlashInfer launcher builds and the CSV writer; the timing helpers.
import bench_sampling as bs
import bench_timing as bt
import torch

try:
    import sgl_kernel as sk
    from sglang.bench_sampler_synthetic import realistic_batch
    from sglang.srt.layers.logits_processor import LogitsProcessorOutput
    from sglang.srt.layers.sampler import Sampler, top_k_top_p_min_p_sampling_from_probs_torch
    from sglang.srt.sampling.sampling_batch_info import SamplingBatchInfo
    from sglang.srt.sampling.sampling_params import SamplingParams
except ImportError as err:  # a clear message instead of a traceback
    sys.exit(
        f"bench_sampler_forward.py needs sgl_kernel and sglang importable "
        f"(PYTHONPATH=sgl-kernel/python:python): {err}"
    )

BATCHES = (1, 8, 64, 256)
VOCABS = (32000, 128256, 151936)
TARGET_VOCAB = 128256  # the targets are set at this vocab
PROBS_OP = "top_k_top_p_min_p_sampling_from_probs"
LOGITS_OP = "top_k_top_p_min_p_sampling_from_logits"
BACKENDS = ("flashinfer", "pytorch")
FIRST_POSITION = 1000  # positions of the tokens being sampled; any value works
TOP_K, TOP_P, MIN_P = 50, 0.9, 0.05
SEEDED = SamplingParams(temperature=0.8, top_p=TOP_P, sampling_seed=1234)
SHAPES = {"peaked": 3.0, "flat": 0.5}  # rows = softmax(randn * scale)
FILTERS = {  # name: (top-k or None for the vocab, top-p, min-p)
    "keep-all": (None, 1.0, 0.0),
    "top-p 0.9": (None, TOP_P, 0.0),
    "top-k 50": (TOP_K, 1.0, 0.0),
    "min-p 0.05": (None, 1.0, MIN_P),
    "top-k 50 + top-p 0.9": (TOP_K, TOP_P, 0.0),
}
ONE_READ = "one read (amax)"
TORCH_SORT = "torch sort path"
OURS_PROBS = "ours: probs op"
OURS_LOGITS = "ours: logits op"
FI_BEST = "FlashInfer best"
GRID_SLEEP_US = 100.0  # covers one op's host work (a few launches)

# Issue #16's targets (H200, device us, median).
FORWARD_B1_US = 20.0
FORWARD_MENU_US = {64: 60.0, 256: 120.0}
FORWARD_MAX_SPREAD = 1.3
FORWARD_MAX_MIB = 1.0
OP_MAX_RATIO, OP_MEDIAN_RATIO = 1.0, 0.5
OP_B1_FILTER, OP_B1_US = "top-k 50 + top-p 0.9", 15.0

FORWARD_COLUMNS = (
    "backend", "request", "batch", "vocab", "device_us", "host_us", "extra_mib", "syncs",
    "x_read", "note",
)  # fmt: skip
GRID_COLUMNS = (
    "impl", "filter", "shape", "batch", "vocab", "device_us", "host_us", "x_read", "note",
)  # fmt: skip


# --------------------------------------------------------------------------- requests


def request_types(batch: int) -> dict:
    """name -> the batch's SamplingParams, one request type per batch."""
    menu = realistic_batch(batch, 8)[1]  # the synthetic job's settings (tiny logits)
    same = {
        "temperature": SamplingParams(temperature=1.0),
        "top-p 0.9": SamplingParams(temperature=1.0, top_p=TOP_P),
        "top-k 50": SamplingParams(temperature=1.0, top_k=TOP_K),
        "min-p 0.05": SamplingParams(temperature=1.0, min_p=MIN_P),
        "greedy": SamplingParams(temperature=0.0),
    }
    types = {name: [p] * batch for name, p in same.items()}
    types["menu (8 settings)"] = menu
    types["one seeded"] = menu[: batch - 1] + [SEEDED]
    return types


class ForwardCall:
    """Sampler.forward on one batch, called as a server calls it (no logprobs)."""

    def __init__(self, logits, params, backend, device):
        self.logits = logits
        self.info = SamplingBatchInfo.from_sampling_params(params, device)
        self.sampler = Sampler(backend)
        batch = len(params)
        self.positions = torch.arange(batch, dtype=torch.int64, device=device) + FIRST_POSITION
        self.top_logprobs, self.token_ids = [0] * batch, [None] * batch

    def __call__(self):
        return self.sampler(
            LogitsProcessorOutput(self.logits),
            self.info,
            False,
            self.top_logprobs,
            self.token_ids,
            positions=self.positions,
        )


# --------------------------------------------------------------------------- recording


class Budget:
    """Wall-clock budget: once spent, what is left is skipped (and said so)."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds
        self.skipped = 0

    def spent(self) -> bool:
        if time.monotonic() > self.end:
            self.skipped += 1
            return True
        return False


class Bench:
    def __init__(self, device, warmup, runs, budget, log=print):
        self.device, self.warmup, self.runs, self.budget, self.log = (
            device,
            warmup,
            runs,
            budget,
            log,
        )
        self.on_gpu = device.type != "cpu"
        self.forward_rows, self.grid_rows, self.notes = [], [], []
        self.reads = {}  # (batch, vocab) -> us of one read of the logits

    def time_us(self, fn, sleep_cycles=0, runs=None) -> float:
        return bt.device_us(fn, self.device, self.warmup, runs or self.runs, sleep_cycles)

    def grid_sleep(self) -> int:
        if self.device.type != "cuda":
            return 0
        return int(GRID_SLEEP_US * bt.sleep_cycles_per_us(self.device.index or 0))


def _r(v, digits=1):
    return round(v, digits) if v == v else float("nan")


# --------------------------------------------------------------------------- 1. forward


@functools.lru_cache(maxsize=4)
def _zipf_logits(max_batch, vocab):
    return realistic_batch(max_batch, vocab)[0]  # seconds at 256 x 151936: built once


def run_forward(b: Bench, vocabs, batches, backend):
    """Every request type on `backend`; the floor (one read) with the first backend."""
    for vocab in vocabs:
        if b.budget.spent():
            continue
        logits_all = _zipf_logits(max(batches), vocab).to(b.device)
        for batch in batches:
            logits = logits_all[:batch]
            if b.budget.spent():
                continue
            if (batch, vocab) not in b.reads:
                read = b.time_us(lambda: logits.amax(dim=-1), b.grid_sleep())
                b.reads[batch, vocab] = read
                b.forward_rows.append(_forward_row("-", ONE_READ, batch, vocab, read, read))
            for name, params in request_types(batch).items():
                if b.budget.spent():
                    continue
                row = _measure_forward(b, logits, params, backend, name, b.reads[batch, vocab])
                b.forward_rows.append(row)
                b.log(
                    f"forward {backend:10s} {name:18s} {batch:4d} x {vocab:6d} "
                    f"{row['device_us']:9.1f} us  host {row['host_us']:7.1f} us  "
                    f"+{row['extra_mib']} MiB  syncs {row['syncs']}  {row['note']}"
                )
        del logits_all


def warm_up(b: Bench, vocab: int, seconds: float = 2.0) -> None:
    """Before the first measurement: the GPU at its working clock, and the process's first
    Sampler call made, its result thrown away. Without it the first vocabulary measured
    read 2-3x slow (H200, 2026-12-04: one read of 1 x 128256 at 30 us, 10 us at 151936
    measured after it) and its first cell synced with the host once."""
    x = torch.randn(4096, 4096, device=b.device)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(20):
            x = torch.tanh(x @ x)
        bs._device_module(b.device).synchronize()
    logits = _zipf_logits(1, vocab).to(b.device)
    params = next(iter(request_types(1).values()))
    _measure_forward(b, logits, params, "flashinfer", "warm-up", float("nan"))


def _forward_row(backend, request, batch, vocab, device_us, read_us, **extra):
    row = dict.fromkeys(FORWARD_COLUMNS, "")
    row.update(backend=backend, request=request, batch=batch, vocab=vocab)
    row.update(device_us=_r(device_us), x_read=_r(device_us / read_us, 2))
    row.update(host_us=float("nan"), extra_mib=float("nan"), syncs=float("nan"))
    row.update(extra)
    return row


def _measure_forward(b: Bench, logits, params, backend, name, read_us):
    batch, vocab = logits.shape
    try:
        call = ForwardCall(logits, params, backend, b.device)
        # First calls: errors surface here, and lazy set-up stays out of the numbers. (The
        # process's first cell showed one host sync even after three calls: warm_up now
        # makes the process's first cell a throwaway one.)
        for _ in range(3):
            call()
        syncs = bt.host_syncs(call, b.device)
        note = ""
        if syncs and syncs > 0:
            host = float("nan")  # a syncing call waits on the queued sleep
            sleep = 0
            note = "syncs with the host: launch gaps included"
        else:
            host = bt.host_us(call, b.device, calls=20)
            sleep = bt.hiding_sleep_cycles(call, b.device, host)
        dev = b.time_us(call, sleep)
        mib = bt.extra_mib(call, b.device)
    except Exception as err:  # a failing path is a result to report, not a crash
        return _forward_row(backend, name, batch, vocab, float("nan"), read_us, note=repr(err))
    return _forward_row(
        backend, name, batch, vocab, dev, read_us,
        host_us=_r(host), extra_mib=_r(mib, 3), syncs=syncs, note=note,
    )  # fmt: skip


# --------------------------------------------------------------------------- 2. op grid


def _rows_of(value, batch, dtype, device):
    return torch.full((batch,), value, dtype=dtype, device=device)


def our_ops(b: Bench):
    """(label, call(logits, probs, ks, ps, ms, temps, seeds, positions)) of our ops present."""
    ops = []
    if hasattr(sk, PROBS_OP):
        probs_op = getattr(sk, PROBS_OP)
        ops.append(
            (
                OURS_PROBS,
                lambda lg, pr, k, p, m, t, s, pos: probs_op(pr, k, p, m, seeds=s, positions=pos),
            )
        )
    else:
        b.notes.append(f"sgl_kernel.{PROBS_OP} is not in this build: its rows are skipped")
    if hasattr(sk, LOGITS_OP):
        logits_op = getattr(sk, LOGITS_OP)
        ops.append(
            (
                OURS_LOGITS,
                lambda lg, pr, k, p, m, t, s, pos: logits_op(
                    lg, t, k, p, m, seeds=s, positions=pos
                ),
            )
        )
    else:
        b.notes.append(f"sgl_kernel.{LOGITS_OP} is not in this build yet: its rows are skipped")
    return ops


def flashinfer_candidates(fi, filter_name, batch, vocab, device):
    """label -> call(logits, probs) of each FlashInfer launcher (or chain) that samples
    with `filter_name`; the Philox offset advances by 32 per row every call."""
    k, p, m = FILTERS[filter_name]
    state = {"offset": 0}

    def offset():
        state["offset"] += 32 * batch
        return state["offset"]

    out = torch.empty(batch, dtype=torch.int32, device=device)
    buf, buf2 = (torch.empty(batch, vocab, device=device) for _ in range(2))
    has = functools.partial(hasattr, fi)
    rows_state = (
        torch.zeros(1 << 20, dtype=torch.uint8, device=device)
        if has("radix_top_k_renorm")
        else None
    )
    air_ws = None
    if has("air_top_p_renorm"):
        air_ws = torch.empty(
            fi.air_top_p_workspace_bytes(batch, vocab), dtype=torch.uint8, device=device
        )

    def radix_k(probs):
        fi.radix_top_k_renorm(probs, buf, k, rows_state)
        return buf

    c = {}
    if filter_name == "keep-all":
        c["sampling_from_probs"] = lambda lg, pr: fi.sampling(pr, out, 0, offset())
        if has("sampling_from_logits"):
            c["sampling_from_logits"] = lambda lg, pr: fi.sampling_from_logits(lg, out, 0, offset())
    elif filter_name == "top-p 0.9":
        c["top_p_sampling_from_probs"] = lambda lg, pr: fi.top_p_sampling(pr, out, p, 0, offset())
        if air_ws is not None:
            c["AIR top-p renorm + sampling_from_probs"] = lambda lg, pr: (
                fi.air_top_p_renorm(pr, buf, p, air_ws),
                fi.sampling(buf, out, 0, offset()),
            )
    elif filter_name == "top-k 50":
        c["top_k_sampling_from_probs"] = lambda lg, pr: fi.top_k_sampling(pr, out, k, 0, offset())
        if rows_state is not None:
            c["radix top-k renorm + sampling_from_probs"] = lambda lg, pr: fi.sampling(
                radix_k(pr), out, 0, offset()
            )
            c["radix top-k mask logits + sampling_from_logits"] = lambda lg, pr: (
                fi.radix_top_k_mask_logits(lg, buf, k, rows_state),
                fi.sampling_from_logits(buf, out, 0, offset()),
            )
    elif filter_name == "min-p 0.05":
        c["min_p_sampling_from_probs"] = lambda lg, pr: fi.min_p_sampling(pr, out, m, 0, offset())
    else:  # top-k + top-p
        c["joint top-k/top-p"] = lambda lg, pr: fi.joint_sampling(pr, out, k, p, 0, offset())
        if rows_state is not None:
            c["radix top-k renorm + top_p_sampling_from_probs"] = lambda lg, pr: fi.top_p_sampling(
                radix_k(pr), out, p, 0, offset()
            )
            if air_ws is not None:
                c["radix top-k renorm + AIR top-p renorm + sampling_from_probs"] = lambda lg, pr: (
                    fi.air_top_p_renorm(radix_k(pr), buf2, p, air_ws),
                    fi.sampling(buf2, out, 0, offset()),
                )
    return c


def run_grid(b: Bench, vocabs, batches, fi_modules):
    ops = our_ops(b)
    gen = torch.Generator(device=b.device).manual_seed(16)
    sleep = b.grid_sleep()
    host_vocab = TARGET_VOCAB if TARGET_VOCAB in vocabs else vocabs[0]
    for vocab in vocabs:
        for batch in batches:
            pos = torch.arange(batch, dtype=torch.int64, device=b.device) + FIRST_POSITION
            seeds = torch.randint(-(2**63), 2**63 - 1, (batch,), generator=gen, device=b.device)
            temps = _rows_of(1.0, batch, torch.float32, b.device)
            for shape, scale in SHAPES.items():
                logits = torch.randn(batch, vocab, generator=gen, device=b.device) * scale
                probs = torch.softmax(logits, dim=-1)
                for filter_name, (k, p, m) in FILTERS.items():
                    if b.budget.spent():
                        continue
                    ks = _rows_of(vocab if k is None else k, batch, torch.int32, b.device)
                    ps = _rows_of(p, batch, torch.float32, b.device)
                    ms = _rows_of(m, batch, torch.float32, b.device)
                    # The logits op gets None for a filter the cell does not use, as the
                    # Sampler passes it (the probs op takes every array).
                    used = (
                        ks if k is not None else None,
                        ps if p < 1 else None,
                        ms if m > 0 else None,
                    )
                    cell = dict(filter=filter_name, shape=shape, batch=batch, vocab=vocab)
                    want_host = vocab == host_vocab and shape == "peaked"

                    def record(impl, fn, host=want_host, runs=None, note=""):
                        try:
                            fn()
                            dev = b.time_us(fn, sleep, runs)
                            h = bt.host_us(fn, b.device) if host else float("nan")
                        except Exception as err:  # report, do not crash
                            dev, h, note = float("nan"), float("nan"), repr(err)
                        row = dict.fromkeys(GRID_COLUMNS, "")
                        row.update(cell, impl=impl, device_us=_r(dev), host_us=_r(h), note=note)
                        b.grid_rows.append(row)
                        return row

                    read = record(ONE_READ, lambda: probs.amax(dim=-1))
                    rows = [read]
                    for label, op in ops:
                        kpm = used if label == OURS_LOGITS else (ks, ps, ms)
                        rows.append(
                            record(
                                label,
                                lambda op=op, kpm=kpm: op(logits, probs, *kpm, temps, seeds, pos),
                            )
                        )
                    rows.append(
                        record(
                            TORCH_SORT,
                            lambda: top_k_top_p_min_p_sampling_from_probs_torch(
                                probs, ks, ps, ms, m > 0
                            ),
                            host=False,  # too many launches for the host measurement
                            runs=min(b.runs, 30),
                        )
                    )
                    for version, fi in fi_modules.items():
                        cands = flashinfer_candidates(fi, filter_name, batch, vocab, b.device)
                        fi_rows = [
                            record(
                                f"FlashInfer {version}: {label}",
                                lambda fn=fn: fn(logits, probs),
                            )
                            for label, fn in cands.items()
                        ]
                        rows += fi_rows
                        timed = [r for r in fi_rows if r["device_us"] == r["device_us"]]
                        if timed:
                            best = min(timed, key=lambda r: r["device_us"])
                            row = dict(best, impl=f"{FI_BEST} {version}", note=best["impl"])
                            b.grid_rows.append(row)
                            rows.append(row)
                    for r in rows:
                        r["x_read"] = _r(r["device_us"] / read["device_us"], 2)
                    b.log(
                        f"grid {filter_name:22s} {shape:6s} {batch:4d} x {vocab:6d}  "
                        + "  ".join(f"{r['impl']}: {r['device_us']}" for r in rows)
                    )


# --------------------------------------------------------------------------- targets


def check_targets(b: Bench, fi_version):
    """The issue's targets as (target, measured, verdict) rows."""
    on_gpu, out = b.on_gpu, []
    fwd = [
        r for r in b.forward_rows
        if r["backend"] == "flashinfer" and r["vocab"] == TARGET_VOCAB and r["device_us"] == r["device_us"]
    ]  # fmt: skip
    if not fwd:
        out.append(("Sampler.forward targets (vocab 128256, kernel backend)", "not measured", "-"))
    b1 = [r for r in fwd if r["batch"] == 1]
    if b1:
        worst = max(b1, key=lambda r: r["device_us"])
        out.append(
            (
                f"Sampler.forward batch 1 <= {FORWARD_B1_US:g} us for every request type",
                f"slowest: {worst['request']} {worst['device_us']} us",
                bt.met(worst["device_us"] <= FORWARD_B1_US, on_gpu),
            )
        )
    for batch, target in FORWARD_MENU_US.items():
        r = next((r for r in fwd if r["batch"] == batch and r["request"].startswith("menu")), None)
        if r:
            out.append(
                (
                    f"Sampler.forward menu, batch {batch} <= {target:g} us",
                    f"{r['device_us']} us",
                    bt.met(r["device_us"] <= target, on_gpu),
                )
            )
    for batch in sorted({r["batch"] for r in fwd}):
        sel = [r for r in fwd if r["batch"] == batch]
        lo, hi = min(sel, key=lambda r: r["device_us"]), max(sel, key=lambda r: r["device_us"])
        spread = hi["device_us"] / lo["device_us"]
        out.append(
            (
                f"batch {batch}: slowest / fastest request type <= {FORWARD_MAX_SPREAD}x",
                f"{spread:.2f}x ({hi['request']} {hi['device_us']} / {lo['request']} {lo['device_us']})",
                bt.met(spread <= FORWARD_MAX_SPREAD, on_gpu),
            )
        )
    if fwd:
        worst = max(fwd, key=lambda r: r["extra_mib"] if r["extra_mib"] == r["extra_mib"] else -1)
        out.append(
            (
                f"peak extra memory <= {FORWARD_MAX_MIB:g} MiB per step (no logprobs)",
                f"largest: {worst['request']} batch {worst['batch']}: {worst['extra_mib']} MiB",
                bt.met(worst["extra_mib"] <= FORWARD_MAX_MIB, on_gpu),
            )
        )
    best = {
        _cell(r): r["device_us"]
        for r in b.grid_rows
        if r["impl"] == f"{FI_BEST} {fi_version}" and r["device_us"] == r["device_us"]
    }
    for ours in (OURS_LOGITS, OURS_PROBS):
        rows = [r for r in b.grid_rows if r["impl"] == ours and r["device_us"] == r["device_us"]]
        if not rows:
            out.append((f"op grid, {ours}", "not measured", "-"))
            continue
        ratios = [(r["device_us"] / best[_cell(r)], r) for r in rows if _cell(r) in best]
        if ratios:
            worst_ratio, worst = max(ratios, key=lambda x: x[0])
            median = statistics.median(x[0] for x in ratios)
            out.append(
                (
                    f"{ours} <= {OP_MAX_RATIO}x FlashInfer {fi_version}'s best in every cell",
                    f"worst {worst_ratio:.2f}x ({_cell_text(worst)}); "
                    f"{sum(x[0] <= OP_MAX_RATIO for x in ratios)}/{len(ratios)} cells",
                    bt.met(worst_ratio <= OP_MAX_RATIO, on_gpu),
                )
            )
            out.append(
                (
                    f"{ours}: median ratio to FlashInfer's best <= {OP_MEDIAN_RATIO}x",
                    f"{median:.2f}x over {len(ratios)} cells",
                    bt.met(median <= OP_MEDIAN_RATIO, on_gpu),
                )
            )
        else:
            out.append((f"{ours} vs FlashInfer {fi_version}", "FlashInfer not measured", "-"))
        b1 = [
            r for r in rows
            if r["batch"] == 1 and r["vocab"] == TARGET_VOCAB and r["filter"] == OP_B1_FILTER
        ]  # fmt: skip
        if b1:
            worst = max(b1, key=lambda r: r["device_us"])
            out.append(
                (
                    f"{ours}: batch 1 x 128256 {OP_B1_FILTER} <= {OP_B1_US:g} us",
                    f"{worst['device_us']} us ({worst['shape']}, the slower shape)",
                    bt.met(worst["device_us"] <= OP_B1_US, on_gpu),
                )
            )
    return out


def _cell(r):
    return (r["filter"], r["shape"], r["batch"], r["vocab"])


def _cell_text(r):
    return f"{r['filter']}, {r['shape']}, {r['batch']} x {r['vocab']}"


# --------------------------------------------------------------------------- report


def _fmt(v):
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:g}"
    return str(v) if v != "" else "-"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines + [""]


def write_report(b: Bench, targets, path, title, method):
    lines = [f"# {title}", ""] + [f"- {n}" for n in method + b.notes] + [""]
    lines += ["## The issue's targets", ""]
    lines += _table(("target", "measured", "met"), targets)
    fwd = b.forward_rows
    batches = sorted({r["batch"] for r in fwd})
    for vocab in sorted({r["vocab"] for r in fwd}):
        lines += [
            f"## Sampler.forward, vocab {vocab}: device us (x one read; +MiB peak; syncs)",
            "",
        ]
        body = []
        for backend in ("-",) + BACKENDS:
            for req in dict.fromkeys(r["request"] for r in fwd if r["backend"] == backend):
                cells = []
                for batch in batches:
                    r = next(
                        (x for x in fwd if (x["backend"], x["request"], x["batch"], x["vocab"])
                         == (backend, req, batch, vocab)),
                        None,
                    )  # fmt: skip
                    cells.append("" if r is None else _forward_cell(r))
                body.append([backend if backend != "-" else "floor", req] + cells)
        lines += _table(["backend", "request"] + [f"batch {x}" for x in batches], body)
    host = [r for r in fwd if r["host_us"] == r["host_us"] and r["vocab"] == TARGET_VOCAB]
    if host:
        lines += ["## Sampler.forward host us per call (vocab 128256, GPU busy)", ""]
        body = []
        for backend in BACKENDS:
            for req in dict.fromkeys(r["request"] for r in host if r["backend"] == backend):
                body.append(
                    [backend, req]
                    + [
                        next(
                            (
                                x["host_us"]
                                for x in host
                                if (x["backend"], x["request"], x["batch"]) == (backend, req, batch)
                            ),
                            "",
                        )  # fmt: skip
                        for batch in batches
                    ]
                )
        lines += _table(["backend", "request"] + [f"batch {x}" for x in batches], body)
    grid = b.grid_rows
    if grid:
        impls = list(dict.fromkeys(r["impl"] for r in grid))
        shown = [i for i in impls if not i.startswith("FlashInfer ") or i.startswith(FI_BEST)]
        lines += [
            "## The op grid: device us (x one read of the probabilities)",
            "",
            "The last column names the kernel of FlashInfer best; every FlashInfer "
            "launcher's own time is in op_grid.csv.",
            "",
        ]
        body = []
        for cell in dict.fromkeys(_cell(r) for r in grid):
            by = {r["impl"]: r for r in grid if _cell(r) == cell}
            row = [cell[0], cell[1], cell[2], cell[3]]
            for impl in shown:
                r = by.get(impl)
                row.append("" if r is None else f"{_fmt(r['device_us'])} ({_fmt(r['x_read'])}x)")
            best = next((by[i] for i in shown if i.startswith(FI_BEST) and i in by), None)
            row.append(best["note"].split(": ", 1)[-1] if best else "")
            body.append(row)
        lines += _table(["filter", "rows", "batch", "vocab"] + shown + ["FlashInfer best is"], body)
        host = [r for r in grid if r["host_us"] == r["host_us"]]
        if host:
            lines += ["## The op grid: host us per call (peaked rows, GPU busy)", ""]
            body = [
                [r["impl"], r["filter"], r["batch"], r["vocab"], r["host_us"]]
                for r in host
                if not r["impl"].startswith(FI_BEST)
            ]
            lines += _table(("impl", "filter", "batch", "vocab", "host us"), body)
    Path(path).write_text("\n".join(lines) + "\n")


def _forward_cell(r):
    if r["device_us"] != r["device_us"]:
        return f"error: {r['note'][:60]}"
    text = f"{_fmt(r['device_us'])} ({_fmt(r['x_read'])}x"
    if r["extra_mib"] == r["extra_mib"]:
        text += f"; +{_fmt(r['extra_mib'])} MiB"
    if r["syncs"] == r["syncs"] and r["syncs"]:
        text += f"; {int(r['syncs'])} syncs"
    return text + ")"


def plot(b: Bench, fi_version, path_forward, path_grid, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fwd = [r for r in b.forward_rows if r["device_us"] == r["device_us"]]
    vocab = (
        TARGET_VOCAB
        if any(r["vocab"] == TARGET_VOCAB for r in fwd)
        else max((r["vocab"] for r in fwd), default=0)
    )
    sel = [r for r in fwd if r["vocab"] == vocab]
    batches = sorted({r["batch"] for r in sel})
    series = list(dict.fromkeys((r["backend"], r["request"]) for r in sel))
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / max(len(series), 1)
    for i, (backend, req) in enumerate(series):
        ys = [
            next((r["device_us"] for r in sel
                  if (r["backend"], r["request"], r["batch"]) == (backend, req, x)), 0)
            for x in batches
        ]  # fmt: skip
        ax.bar(
            [j + i * width for j in range(len(batches))],
            ys,
            width,
            label=f"{backend}: {req}" if backend != "-" else req,
            hatch="//" if backend == "pytorch" else None,
        )
    ax.set_xticks(
        [j + 0.4 - width / 2 for j in range(len(batches))], [f"batch {x}" for x in batches]
    )
    ax.set_yscale("log")
    ax.set_ylabel("device us (log)")
    ax.set_title(f"Sampler.forward, logits -> ids, vocab {vocab}", fontsize=9)
    ax.legend(fontsize=6, ncol=3)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path_forward, dpi=90)
    plt.close(fig)

    grid = [r for r in b.grid_rows if r["device_us"] == r["device_us"]]
    fig, ax = plt.subplots(figsize=(12, 5))
    cells = list(dict.fromkeys(_cell(r) for r in grid))
    impls = [
        i for i in dict.fromkeys(r["impl"] for r in grid)
        if i in (OURS_LOGITS, OURS_PROBS, TORCH_SORT, ONE_READ) or i.startswith(FI_BEST)
    ]  # fmt: skip
    markers = dict(zip(impls, "os^vDx"))
    for impl in impls:
        pts = [
            (n, r["device_us"]) for n, c in enumerate(cells) for r in grid
            if _cell(r) == c and r["impl"] == impl
        ]  # fmt: skip
        if pts:
            ax.plot(*zip(*pts), markers.get(impl, "."), label=impl, ms=4)
    ax.set_yscale("log")
    ax.set_xlabel("cell (filter, rows, batch, vocab: op_grid.csv order)")
    ax.set_ylabel("device us (log)")
    ax.set_title("the op grid", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path_grid, dpi=90)
    plt.close(fig)


def write_csv(rows, columns, path):
    if rows:
        bs.write_csv([{c: r[c] for c in columns} for r in rows], path)
    else:
        Path(path).write_text(",".join(columns) + "\n")


def tree_commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "log", "-1", "--format=%h %cs"],
                capture_output=True,
                text=True,
                cwd=Path(__file__).parent,
                timeout=10,
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# --------------------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for CSV, report, plots")
    parser.add_argument("--device", default=None, help="cuda, musa or cpu (default: GPU if any)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, few calls")
    parser.add_argument("--batches", type=int, nargs="+", default=None)
    parser.add_argument("--vocabs", type=int, nargs="+", default=None)
    parser.add_argument(
        "--pytorch-vocabs",
        type=int,
        nargs="+",
        default=None,
        help="vocabs at which the pytorch backend's forward is timed (default: all)",
    )
    parser.add_argument(
        "--parts", nargs="+", default=["forward", "grid"], choices=["forward", "grid"]
    )
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument(
        "--budget-s", type=float, default=420.0, help="wall-clock budget; the rest is skipped"
    )
    parser.add_argument(
        "--flashinfer",
        action="append",
        default=[],
        metavar="VERSION=INCLUDE_DIR",
        help="FlashInfer VERSION's launchers, built against INCLUDE_DIR (bench_sampling.py)",
    )
    args = parser.parse_args(argv)
    start = time.monotonic()

    if args.device is None:
        gpu = torch.cuda.is_available() or (hasattr(torch, "musa") and torch.musa.is_available())
        args.device = ("cuda" if torch.cuda.is_available() else "musa") if gpu else "cpu"
    device = torch.device(args.device)
    on_gpu = device.type != "cpu"
    small = args.quick or not on_gpu  # the CPU runs the kernels' torch references
    batches = args.batches or ([1, 8] if small else list(BATCHES))
    vocabs = args.vocabs or ([1024] if small else list(VOCABS))
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 10)
    runs = args.runs or ((10 if on_gpu else 3) if args.quick else (100 if on_gpu else 10))
    args.out.mkdir(parents=True, exist_ok=True)

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    card = bt.card_name(device)
    title = (
        f"Sampler.forward and the sampling op grid (issue #16) on {card}, {date}, "
        f"torch {torch.__version__}, tree {tree_commit()}"
    )
    print("#", title, flush=True)
    b = Bench(device, warmup, runs, Budget(args.budget_s))
    fi = {}
    if on_gpu and device.type == "cuda":
        for spec in args.flashinfer:
            version, _, include_dir = spec.partition("=")
            try:
                fi[version] = bs.load_flashinfer_launchers(version, include_dir)
            except Exception as err:  # the rest of the run is still worth having
                b.notes.append(f"FlashInfer {version}'s launchers did not build: {err!r}")
    elif args.flashinfer:
        b.notes.append("FlashInfer launchers are CUDA-only: skipped here")
    for version, m in fi.items():
        missing = [
            n for n in ("radix_top_k_renorm", "air_top_p_renorm", "sampling_from_logits")
            if not hasattr(m, n)
        ]  # fmt: skip
        if missing:
            b.notes.append(
                f"FlashInfer {version}: not bound from its headers: {', '.join(missing)}"
            )
    method = [
        f"device us = median of {runs} calls after {warmup} warm-up calls, device events, "
        "every call after an L2-sized memset and a queued GPU sleep longer than its host "
        "work (launch hidden); host us = CPU time of one call while the GPU is busy"
        if on_gpu
        else f"CPU: median of {runs} host-timed calls after {warmup}: plumbing only, not a measurement",
        "forward: Sampler.forward(LogitsProcessorOutput(logits), info, return_logprob=False, "
        "...), logits from sglang.bench_sampler_synthetic.realistic_batch (Zipf); "
        "x one read = time / logits.amax(-1); +MiB = peak allocated above what was "
        "allocated before the call",
        "op grid: rows softmax(randn * 3) peaked, softmax(randn * 0.5) flat; the logits "
        "op gets randn * scale and temperature 1; per-row k/p/min-p tensors (the logits "
        "op: None for a filter the cell does not use, as the Sampler passes it), seeds and "
        "positions given; FlashInfer deterministic, scalar k/p/min-p; FlashInfer best = "
        "the fastest of its launchers for the filter in that cell",
    ]
    for n in method + b.notes:
        print("#", n, flush=True)

    fi_version = next(iter(fi), "0.7.2.post1")
    if on_gpu:
        warm_up(b, vocabs[0])
    if "forward" in args.parts:
        run_forward(b, vocabs, batches, "flashinfer")
    if "grid" in args.parts:
        run_grid(b, vocabs, batches, fi)
    if "forward" in args.parts:  # the slow sort path last: first to go if time runs out
        run_forward(b, args.pytorch_vocabs or vocabs, batches, "pytorch")
    if b.budget.skipped:
        b.notes.append(
            f"time budget of {args.budget_s:g} s spent: {b.budget.skipped} cases skipped"
        )

    targets = check_targets(b, fi_version)
    write_csv(b.forward_rows, FORWARD_COLUMNS, args.out / "forward.csv")
    write_csv(b.grid_rows, GRID_COLUMNS, args.out / "op_grid.csv")
    write_report(b, targets, args.out / "report.md", title, method)
    plot(b, fi_version, args.out / "forward.png", args.out / "op_grid.png", title)
    print("\n| target | measured | met |\n|---|---|---|")
    for t in targets:
        print("| " + " | ".join(map(str, t)) + " |")
    print(f"wrote {args.out}/forward.csv, op_grid.csv, report.md, forward.png, op_grid.png "
          f"in {time.monotonic() - start:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
