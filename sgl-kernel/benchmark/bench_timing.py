"""Timing helpers shared by the Sampler benchmarks (bench_sampler_step.py,
bench_sampler_forward.py): device time with the launch hidden, host cost per call, peak
extra memory, host syncs, the card's name. On the CPU they fall back to host timers so
the scripts' --quick paths run anywhere; everything GPU-only is guarded here.
"""

from __future__ import annotations

import functools
import platform
import statistics
import time
import warnings

# bench_sampling (same folder): the event timer with the L2 flush, the host-cost timer.
import bench_sampling as bs
import torch


def device_us(fn, device, warmup, runs, sleep_cycles=0) -> float:
    """Median device time of fn in us (bench_sampling.median_us: events, L2 flushed, no
    host sync between calls; sleep_cycles queues a GPU sleep before each call, CUDA
    only); on the CPU, the median of time.perf_counter around each call."""
    if device.type != "cpu":
        if device.type != "cuda":
            sleep_cycles = 0  # torch.cuda._sleep is CUDA's
        return bs.median_us(fn, device, warmup, runs, sleep_cycles=sleep_cycles)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


def host_us(fn, device, calls=100) -> float:
    """CPU us of one call while the GPU is busy (CUDA only, else NaN)."""
    return bs.host_us(fn, device, calls=calls) if device.type == "cuda" else float("nan")


@functools.lru_cache(maxsize=None)
def sleep_cycles_per_us(device_index: int) -> float:
    """Clock cycles of torch.cuda._sleep per microsecond on this GPU, measured once."""
    device = torch.device("cuda", device_index)
    cycles = 20_000_000
    torch.cuda._sleep(cycles)  # warm-up
    us = bs.median_us(lambda: torch.cuda._sleep(cycles), device, 1, 5, flush_bytes=1)
    return cycles / us


def hiding_sleep_cycles(fn, device, host_call_us=None, margin=2.0) -> int:
    """GPU sleep cycles that outlast fn's host work by `margin` (0 off CUDA): queued before
    each timed call, the sleep keeps the GPU busy while the host queues the call, so the
    events time the device work of a call that launches many kernels, not the gaps
    between its launches. host_call_us: the host cost if already measured."""
    if device.type != "cuda":
        return 0
    if host_call_us is None or host_call_us != host_call_us:  # None or NaN
        host_call_us = host_us(fn, device, calls=20)
    return int(max(host_call_us, 20.0) * margin * sleep_cycles_per_us(device.index or 0))


def extra_mib(fn, device) -> float:
    """Peak memory one call allocates above what was allocated before it (CUDA only)."""
    if device.type != "cuda":
        return float("nan")
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def host_syncs(fn, device) -> float:
    """How many host-device synchronisations one call makes (CUDA only, else NaN), by
    torch's sync debug mode: a call that syncs cannot be queued ahead of the GPU."""
    if device.type != "cuda":
        return float("nan")
    torch.cuda.synchronize(device)
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    torch.cuda.synchronize(device)
    return float(sum("synchroniz" in str(w.message) for w in caught))


def card_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "musa":
        return torch.musa.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()})"


def met(ok: bool, on_gpu: bool) -> str:
    """A target's verdict: only a GPU's times count."""
    return ("yes" if ok else "NO") if on_gpu else "n/a (cpu)"
