"""What our FlashInfer patches cost valid inputs, with the noise controlled (issue #7).

bench_sampling.py times each op in its own block of calls, with our op drawing from
torch's generator and FlashInfer's launcher from a fixed Philox sequence. The rejection
samplers' time depends on the numbers drawn (the rounds each row needs, the slowest row
sets the call's time), and the two blocks run minutes apart on a GPU whose clocks drift,
so two runs of the same binary differed by up to 4 points. Here, instead:

* the same launcher binding (flashinfer_launchers.cu) is built twice, against FlashInfer
  0.5.3 with only our patches 0001-0004 (the baseline) and against the headers our ops
  build with (every patch), so only the patched kernels differ;
* every call of every variant gets the same Philox seed and offset, so the variants
  draw the same numbers (the patched samplers consume one extra number for some rows in
  their first round, so later rounds may diverge, without bias);
* the variants' calls are interleaved, rotating the order each time, each after an
  L2 flush, so drift hits all of them alike;
* a control compares the baseline with a second copy of itself: the method's own noise.

Reported per op and batch: the median device time of each variant, the ratio of the
medians with a bootstrap 95% interval over the calls, and our op itself (through the
Python wrapper, its generator set to the same seed and offset).

    python sgl-kernel/benchmark/bench_patch_cost.py \\
        --base 3rdparty/.cache/flashinfer-0.5.3-sgl-0001-0004/include \\
        --patched 3rdparty/flashinfer/include --markdown patch_cost.md
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch
from bench_sampling import MIN_P, TOP_K, TOP_P, flashinfer_calls, load_flashinfer_launchers

REPO = Path(__file__).resolve().parents[2]


def op_calls(gen):
    """op -> call(probs, logits, offset) of our op, its generator at (0, offset)."""
    import sgl_kernel as sk

    def at(offset):
        gen.manual_seed(0)
        gen.set_offset(offset)
        return gen

    return {
        "sampling_from_probs": lambda p, lg, o: sk.sampling_from_probs(p, generator=at(o)),
        "top_k_sampling_from_probs": lambda p, lg, o: sk.top_k_sampling_from_probs(
            p, TOP_K, generator=at(o)
        ),
        "top_p_sampling_from_probs": lambda p, lg, o: sk.top_p_sampling_from_probs(
            p, TOP_P, generator=at(o)
        ),
        "top_k_top_p_joint": lambda p, lg, o: sk.top_k_top_p_sampling_from_probs(
            p, TOP_K, TOP_P, filter_apply_order="joint", generator=at(o)
        ),
        "min_p_sampling_from_probs": lambda p, lg, o: sk.min_p_sampling_from_probs(
            p, MIN_P, generator=at(o)
        ),
        "top_p_renorm_probs": lambda p, lg, o: sk.top_p_renorm_probs(p, TOP_P),
        "top_k_renorm_probs": lambda p, lg, o: sk.top_k_renorm_probs(p, TOP_K),
        "top_k_mask_logits": lambda p, lg, o: sk.top_k_mask_logits(lg, TOP_K),
    }


def interleaved_us(variants, probs, logits, warmup, runs):
    """Per-call device times (us) of each variant, calls interleaved in rotating order,
    call i of every variant drawing at Philox offset 32 * rows * (i + 1)."""
    flush = torch.empty(256 << 20, dtype=torch.uint8, device=probs.device)
    names = list(variants)
    step = 32 * probs.size(0)  # what our rejection samplers reserve per call
    for i in range(warmup):
        for name in names:
            variants[name](probs, logits, step * (i + 1))
    torch.cuda.synchronize()
    events = {name: [] for name in names}
    for i in range(runs):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            flush.zero_()
            start.record()
            variants[name](probs, logits, step * (warmup + i + 1))
            end.record()
            events[name].append((start, end))
    torch.cuda.synchronize()
    return {n: np.array([s.elapsed_time(e) * 1e3 for s, e in events[n]]) for n in names}


def ratio_ci(a, b, resamples=2000, seed=0):
    """Ratio of medians a/b and its bootstrap 95% interval, resampling call indices."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(resamples, len(a)))
    ratios = np.median(a[idx], axis=1) / np.median(b[idx], axis=1)
    return np.median(a) / np.median(b), np.percentile(ratios, 2.5), np.percentile(ratios, 97.5)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="include dir of 0.5.3 + patches 0001-0004")
    parser.add_argument("--patched", default=str(REPO / "3rdparty/flashinfer/include"))
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--vocab", type=int, default=128256)
    parser.add_argument("--ops", nargs="+", default=None)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)

    base = load_flashinfer_launchers("0.5.3-sgl-0001-0004", args.base)
    patched = load_flashinfer_launchers("0.5.3-sgl-all-patches", args.patched)
    base_calls, patched_calls = flashinfer_calls(base), flashinfer_calls(patched)
    ours = op_calls(torch.Generator(device="cuda"))
    ops = args.ops or list(ours)
    gen = torch.Generator(device="cuda").manual_seed(0)
    lines = [
        f"# Patch cost, paired ({torch.cuda.get_device_name()}, torch {torch.__version__})",
        "",
        f"vocab {args.vocab}, {args.runs} interleaved calls per variant after {args.warmup}"
        " warm-ups, same Philox numbers; device us (median); ratio of medians to the"
        " baseline with its bootstrap 95% interval.",
        "",
        "| op | batch | baseline (0001-0004) | control (baseline again) | patched (all) | our op |",
        "|---|---|---|---|---|---|",
    ]
    for batch in args.batches:
        logits = torch.randn(batch, args.vocab, device="cuda", generator=gen) * 3
        probs = torch.softmax(logits, dim=-1)
        for op in ops:
            variants = {
                "baseline": base_calls[op],
                "control": base_calls[op],
                "patched": patched_calls[op],
                "op": ours[op],
            }
            t = interleaved_us(variants, probs, logits, args.warmup, args.runs)
            cells = [f"{statistics.median(t['baseline']):.1f}"]
            for name in ("control", "patched", "op"):
                r, lo, hi = ratio_ci(t[name], t["baseline"])
                cells.append(
                    f"{np.median(t[name]):.1f} ({100 * (r - 1):+.1f}%, "
                    f"{100 * (lo - 1):+.1f}..{100 * (hi - 1):+.1f})"
                )
            lines.append(f"| {op} | {batch} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
