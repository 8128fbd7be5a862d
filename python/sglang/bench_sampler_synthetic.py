"""The synthetic-logit job (``python -m sglang.bench_sampler --job synthetic``).

64 requests with mixed temperature / top-k / top-p / min-p (some greedy) over Zipf-shaped
logits of any vocabulary size (default 32000; try 128256 or 151936, which the model
job's 49152-token model does not reach), sampled for --steps decoding steps by each
backend on each device: "pytorch" (sort-based) and "flashinfer" (sgl_kernel's fused
seeded sampling op: the kernel on a GPU, its torch-native reference on the CPU). Both
sample by one definition of the filters, so each backend's token frequencies are
compared with the same exact filtered distribution of every request.

The table shows time per step, tokens per second, the largest |frequency - probability|
over all requests and tokens, the bound that error should stay under (5 standard
deviations of a frequency of `steps` draws at the worst request's largest
probability), and the per-request chi-square test at a false-alarm rate of 1e-4,
Bonferroni-corrected over the 64 requests.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from sglang.bench_sampler_common import available_backends, synchronize
from sglang.srt.layers.logits_processor import LogitsProcessorOutput
from sglang.srt.layers.sampler import KERNELS_UNAVAILABLE_REASON, Sampler
from sglang.srt.sampling.sampling_batch_info import SamplingBatchInfo
from sglang.srt.sampling.sampling_params import SamplingParams
from sglang.test.sampler_testing import exact_distribution

ALPHA = 1e-4


def realistic_batch(batch: int, vocab: int, seed: int = 0):
    """Logits shaped like an LLM's (a few likely tokens over a long Zipf tail) and a mix
    of the sampling settings servers see."""
    g = torch.Generator().manual_seed(seed)
    ranks = torch.arange(1, vocab + 1, dtype=torch.float64)
    zipf = -1.1 * torch.log(ranks)
    logits = torch.stack([zipf[torch.randperm(vocab, generator=g)] for _ in range(batch)])
    logits = (
        logits + 0.5 * torch.randn(batch, vocab, generator=g, dtype=torch.float64)
    ).float() * 2.0
    menu = [
        SamplingParams(temperature=0.0),
        SamplingParams(temperature=0.7, top_p=0.9),
        SamplingParams(temperature=1.0, top_k=50),
        SamplingParams(temperature=0.8, top_k=40, top_p=0.95),
        SamplingParams(temperature=1.0, min_p=0.05),
        SamplingParams(temperature=1.2, top_k=100, top_p=0.8, min_p=0.02),
        SamplingParams(temperature=0.6),
        SamplingParams(temperature=1.0, top_p=0.5),
    ]
    params = [menu[i % len(menu)] for i in range(batch)]
    return logits, params


@dataclass
class Result:
    backend: str
    device: str
    ms_per_step: float
    tokens_per_s: float
    max_freq_error: float
    error_bound: float
    chi2_passed: int
    requests: int

    @property
    def ok(self) -> bool:
        return self.max_freq_error <= self.error_bound and self.chi2_passed == self.requests


def _chi2_ok(counts: torch.Tensor, expected: torch.Tensor, alpha: float) -> bool:
    from scipy import stats

    support = expected > 0
    if int(counts[~support].sum()) > 0:
        return False
    exp_counts = expected[support] * counts.sum()
    obs = counts[support]
    big = exp_counts >= 5  # pool the tail so every bin expects >= 5 draws
    e = torch.cat([exp_counts[big], exp_counts[~big].sum().view(1)])
    o = torch.cat([obs[big], obs[~big].sum().view(1)])
    keep = e > 0
    if int(keep.sum()) < 2:
        return True
    return stats.chisquare(o[keep].numpy(), e[keep].numpy()).pvalue > alpha


def run_backend(backend, device, logits, params, steps, progress=True) -> Result:
    batch, vocab = logits.shape
    info = SamplingBatchInfo.from_sampling_params(params, device)
    sampler = Sampler(backend)
    logits_dev = logits.to(device)
    counts = torch.zeros(batch, vocab, dtype=torch.int64, device=device)
    rows = torch.arange(batch, device=device)
    warmup = 3
    tty = sys.stderr.isatty()
    for _ in range(warmup):
        sampler(LogitsProcessorOutput(logits_dev), info, False, [0] * batch, [None] * batch)
    synchronize(device)
    elapsed = 0.0
    for step in range(steps):
        start = time.perf_counter()
        ids = sampler(LogitsProcessorOutput(logits_dev), info, False, [0] * batch, [None] * batch)
        synchronize(device)
        elapsed += time.perf_counter() - start
        counts[rows, ids.long()] += 1
        if progress and (step + 1) % max(1, steps // (20 if tty else 4)) == 0:
            line = f"  {backend:10s} {device.type:5s} step {step + 1}/{steps}"
            print(
                "\r" + line if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True
            )
    if progress and tty:
        print(file=sys.stderr)

    counts = counts.cpu()
    worst_error, worst_bound, passed = 0.0, 0.0, 0
    for r in range(batch):
        expected = exact_distribution(logits[r], params[r])
        freq = counts[r].double() / steps
        worst_error = max(worst_error, float((freq - expected).abs().max()))
        p = float(expected.max())
        worst_bound = max(worst_bound, 5 * math.sqrt(max(p * (1 - p), 1 / steps) / steps))
        passed += _chi2_ok(counts[r], expected, ALPHA / batch)
    ms = elapsed / steps * 1000
    return Result(
        backend, str(device), ms, batch / (elapsed / steps), worst_error, worst_bound, passed, batch
    )


def print_table(results) -> None:
    head = f"{'backend':11s} {'device':7s} {'ms/step':>9s} {'tokens/s':>10s} {'max|freq-p|':>12s} {'bound':>8s} {'chi2 ok':>8s}  check"
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.backend:11s} {r.device:7s} {r.ms_per_step:9.2f} {r.tokens_per_s:10.0f} "
            f"{r.max_freq_error:12.4f} {r.error_bound:8.4f} {r.chi2_passed:>3d}/{r.requests:<4d}  "
            f"{'ok' if r.ok else 'FAIL'}"
        )


def write_csv(results, path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "backend",
                "device",
                "ms_per_step",
                "tokens_per_s",
                "max_freq_error",
                "error_bound",
                "chi2_passed",
                "requests",
            ]
        )
        for r in results:
            writer.writerow(
                [
                    r.backend,
                    r.device,
                    f"{r.ms_per_step:.4f}",
                    f"{r.tokens_per_s:.1f}",
                    f"{r.max_freq_error:.6f}",
                    f"{r.error_bound:.6f}",
                    r.chi2_passed,
                    r.requests,
                ]
            )


def plot(results, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r.backend}\n{r.device}" for r in results]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    ax1.bar(labels, [r.ms_per_step for r in results], color="tab:blue")
    ax1.set_ylabel("ms per step")
    ax1.set_yscale("log")
    ax1.set_title("time per sampling step")
    ax2.bar(labels, [r.max_freq_error for r in results], color="tab:orange", label="max |freq - p|")
    ax2.scatter(
        labels, [r.error_bound for r in results], color="k", marker="_", s=400, label="bound"
    )
    ax2.set_title("largest frequency error")
    ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def run(args, devices) -> bool:
    """Run the synthetic job on `devices`; True when every check passed."""
    logits, params = realistic_batch(args.batch, args.vocab)
    print(
        f"# synthetic logits: {args.batch} requests x vocab {args.vocab}; torch {torch.__version__}"
    )
    if KERNELS_UNAVAILABLE_REASON:
        print(f"# flashinfer backend skipped: {KERNELS_UNAVAILABLE_REASON}")
    else:
        print(
            "# flashinfer on cpu = sgl_kernel's torch-native reference of the kernels (the test oracle)"
        )
    results = []
    for device in devices:
        steps = args.steps or (100 if device.type == "cpu" else 3000)
        for backend in available_backends(device):
            results.append(
                run_backend(backend, device, logits, params, steps, progress=not args.quiet)
            )
    print_table(results)
    if args.csv:
        write_csv(results, args.csv)
    if args.plot:
        plot(results, args.plot, f"{args.batch} requests x vocab {args.vocab}")
    return all(r.ok for r in results)
