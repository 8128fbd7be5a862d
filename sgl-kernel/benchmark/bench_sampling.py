"""Benchmark every sgl_kernel sampling op against the torch-native sort-based path and
FlashInfer's own launchers.

    python sgl-kernel/benchmark/bench_sampling.py [--csv out.csv] [--plot out.png]
        [--flashinfer 0.5.3=INCLUDE_DIR] [--flashinfer 0.7.2.post1=INCLUDE_DIR]
    python sgl-kernel/benchmark/bench_sampling.py --plot out.png --from-csv results.csv

Every path runs in the same process on the same inputs. --flashinfer builds
flashinfer_launchers.cu (FlashInfer's unpatched launchers behind a minimal binding)
against the headers of that release: the baseline our patches are measured against.
Each device-time number is the median of
--runs timed calls (device events around each call, L2 flushed before each, no host
sync in between: see median_us) after --warmup untimed calls.
"one read" is the time to read the probabilities once at the device-to-device copy
bandwidth measured at start-up; "x read" = kernel time / one read.

"host us" is the CPU time of one call of our wrapper while the GPU is busy (the launch
cost a decode step pays on the host), measured once per op at the smallest size.

The torch-native path is what SGLang's `pytorch` sampling backend does: sort each
row, cut by top-k / top-p / min-p on the sorted row, renormalise or draw with
torch.multinomial, map back through the sort permutation.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import re
import statistics
import sys
import time
from pathlib import Path

import torch

BATCHES = (1, 16, 64, 256)
VOCABS = (32000, 128256, 151936)
TOP_K, TOP_P, MIN_P = 50, 0.9, 0.05


# --------------------------------------------------------------------------- torch-native


def _sorted_keep(probs, top_k=None, top_p=None, min_p=None):
    """Sort-based filter: (sorted probs with cut entries zeroed, sort permutation)."""
    sorted_p, order = probs.sort(dim=-1, descending=True)
    cut = torch.zeros_like(sorted_p, dtype=torch.bool)
    if top_k is not None:
        cut |= torch.arange(probs.size(1), device=probs.device).view(1, -1) >= top_k
    if top_p is not None:
        cut |= (sorted_p.cumsum(dim=-1) - sorted_p) > top_p
    if min_p is not None:
        cut |= sorted_p < sorted_p[:, :1] * min_p
    return sorted_p.masked_fill(cut, 0.0), order


def torch_sample(probs, top_k=None, top_p=None, min_p=None):
    kept, order = _sorted_keep(probs, top_k, top_p, min_p)
    return torch.gather(order, 1, torch.multinomial(kept, 1)).view(-1)


def torch_renorm(probs, top_k=None, top_p=None):
    kept, order = _sorted_keep(probs, top_k, top_p)
    kept = kept / kept.sum(dim=-1, keepdim=True)
    return torch.empty_like(probs).scatter_(1, order, kept)


def torch_mask_logits(logits, top_k):
    kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def cases():
    import sgl_kernel as sk

    return {
        # name: (kernel call, torch-native call); both take (probs, logits)
        "top_k_renorm_probs": (
            lambda p, lg: sk.top_k_renorm_probs(p, TOP_K),
            lambda p, lg: torch_renorm(p, top_k=TOP_K),
        ),
        "top_p_renorm_probs": (
            lambda p, lg: sk.top_p_renorm_probs(p, TOP_P),
            lambda p, lg: torch_renorm(p, top_p=TOP_P),
        ),
        "top_k_mask_logits": (
            lambda p, lg: sk.top_k_mask_logits(lg, TOP_K),
            lambda p, lg: torch_mask_logits(lg, TOP_K),
        ),
        "sampling_from_probs": (
            lambda p, lg: sk.sampling_from_probs(p),
            lambda p, lg: torch.multinomial(p, 1).view(-1),
        ),
        "top_k_sampling_from_probs": (
            lambda p, lg: sk.top_k_sampling_from_probs(p, TOP_K),
            lambda p, lg: torch_sample(p, top_k=TOP_K),
        ),
        "top_p_sampling_from_probs": (
            lambda p, lg: sk.top_p_sampling_from_probs(p, TOP_P),
            lambda p, lg: torch_sample(p, top_p=TOP_P),
        ),
        "top_k_top_p_joint": (
            lambda p, lg: sk.top_k_top_p_sampling_from_probs(
                p, TOP_K, TOP_P, filter_apply_order="joint"
            ),
            lambda p, lg: torch_sample(p, top_k=TOP_K, top_p=TOP_P),
        ),
        "top_k_top_p_top_k_first": (
            lambda p, lg: sk.top_k_top_p_sampling_from_probs(p, TOP_K, TOP_P),
            lambda p, lg: torch_sample(p, top_k=TOP_K, top_p=TOP_P),
        ),
        "min_p_sampling_from_probs": (
            lambda p, lg: sk.min_p_sampling_from_probs(p, MIN_P),
            lambda p, lg: torch_sample(p, min_p=MIN_P),
        ),
    }


# --------------------------------------------------------------------------- FlashInfer


def _setup_musa():
    """sgl-kernel/setup_musa.py as a module (importing it has no side effects): the
    FlashInfer baselines compile with the flags and cuRAND headers our ops do."""
    path = Path(__file__).resolve().parents[1] / "setup_musa.py"
    spec = importlib.util.spec_from_file_location("setup_musa", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_flashinfer_launchers(version: str, include_dir: str):
    """FlashInfer `version`'s unpatched launchers (flashinfer_launchers.cu), built against
    the headers in include_dir (the folder holding flashinfer/sampling.cuh)."""
    from torch.utils.cpp_extension import load

    sm = _setup_musa()
    flags = list(sm.NVCC_FLAGS)
    if not version.startswith("0.5.3"):
        flags.append("-DFLASHINFER_072")
    return load(
        name="flashinfer_launchers_" + re.sub(r"\W", "_", version),
        sources=[str(Path(__file__).with_name("flashinfer_launchers.cu"))],
        extra_include_paths=[include_dir] + sm._curand_include_dirs(),
        extra_cuda_cflags=flags,
        verbose=False,
    )


def flashinfer_calls(fi):
    """name -> call(probs, logits, offset) of FlashInfer's launcher for the same op, Philox
    seed 0 at the given offset (missing where not bound)."""

    def ids(probs):
        return torch.empty(probs.size(0), dtype=torch.int32, device=probs.device)

    def top_k_first(p, o):
        renormed = torch.empty_like(p)
        fi.top_k_renorm(p, renormed, TOP_K)
        fi.top_p_sampling(renormed, ids(p), TOP_P, 0, o)

    out = {
        "top_p_renorm_probs": lambda p, lg, o: fi.top_p_renorm(p, torch.empty_like(p), TOP_P),
        "sampling_from_probs": lambda p, lg, o: fi.sampling(p, ids(p), 0, o),
        "top_k_sampling_from_probs": lambda p, lg, o: fi.top_k_sampling(p, ids(p), TOP_K, 0, o),
        "top_p_sampling_from_probs": lambda p, lg, o: fi.top_p_sampling(p, ids(p), TOP_P, 0, o),
        "top_k_top_p_joint": lambda p, lg, o: fi.joint_sampling(p, ids(p), TOP_K, TOP_P, 0, o),
        "min_p_sampling_from_probs": lambda p, lg, o: fi.min_p_sampling(p, ids(p), MIN_P, 0, o),
    }
    if hasattr(fi, "top_k_renorm"):
        out["top_k_renorm_probs"] = lambda p, lg, o: fi.top_k_renorm(p, torch.empty_like(p), TOP_K)
        out["top_k_mask_logits"] = lambda p, lg, o: fi.top_k_mask(lg, torch.empty_like(lg), TOP_K)
        out["top_k_top_p_top_k_first"] = lambda p, lg, o: top_k_first(p, o)
    return out


def flashinfer_cases(fi):
    """name -> call(probs, logits) of FlashInfer's launcher for the same op.

    The Philox offset advances between calls by what our ops reserve (32 per row for the
    rejection samplers), so both draw fresh numbers every call."""
    state = {"offset": 0}

    def next_offset(probs):
        state["offset"] += 32 * probs.size(0)
        return state["offset"]

    return {
        name: (lambda p, lg, call=call: call(p, lg, next_offset(p)))
        for name, call in flashinfer_calls(fi).items()
    }


# --------------------------------------------------------------------------- timing


def _device_module(device):
    return torch.cuda if device.type == "cuda" else getattr(torch, device.type)


def median_us(fn, device, warmup, runs, flush_bytes=256 << 20, sleep_cycles=0):
    """Median device time of fn, in microseconds.

    Like triton's do_bench: calls are queued without a host sync between them, and an
    L2-sized memset runs before each timed call. The memset keeps the GPU busy while the
    host prepares the next call, so the events bracket device work, not host overhead,
    and every call starts with a cold L2 (a 128k-vocab row would otherwise stay cached).
    sleep_cycles > 0 (CUDA): a GPU sleep of that many clock cycles is queued after the
    memset too, for calls whose host work outlasts the memset (many launches).
    """
    mod = _device_module(device)
    flush = torch.empty(flush_bytes, dtype=torch.uint8, device=device)
    for _ in range(warmup):
        fn()
    mod.synchronize()
    events = [(mod.Event(enable_timing=True), mod.Event(enable_timing=True)) for _ in range(runs)]
    for start, end in events:
        flush.zero_()
        if sleep_cycles:
            torch.cuda._sleep(sleep_cycles)
        start.record()
        fn()
        end.record()
    mod.synchronize()
    return statistics.median(start.elapsed_time(end) * 1000.0 for start, end in events)


def host_us(fn, device, calls=200) -> float:
    """CPU time of one call while the GPU is busy: the queue never blocks the host, so
    this is the launch cost alone (validation, allocation, dispatch)."""
    for _ in range(5):
        fn()
    torch.cuda.synchronize(device)
    torch.cuda._sleep(200_000_000)  # keeps the GPU busy well past the timed calls
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize(device)
    return elapsed / calls * 1e6


def copy_bandwidth(device) -> float:
    """Bytes per second of a large device-to-device copy, counting read + write."""
    src = torch.empty(256 << 20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    us = median_us(lambda: dst.copy_(src), device, warmup=3, runs=20, flush_bytes=1)
    return 2 * src.numel() / (us * 1e-6)


def run(device, batches, vocabs, ops, warmup, runs, flashinfer=None, log=print):
    """flashinfer: {version: launchers module}; their times go in columns fi_<version>_us."""
    bandwidth = copy_bandwidth(device)
    log(f"# device-to-device copy: {bandwidth / 1e12:.2f} TB/s (read + write)")
    all_cases = cases()
    fi_cases = {v: flashinfer_cases(m) for v, m in (flashinfer or {}).items()}
    rows = []
    gen = torch.Generator(device=device).manual_seed(0)
    host = {}
    for vocab in vocabs:
        for batch in batches:
            logits = torch.randn(batch, vocab, device=device, generator=gen) * 3
            probs = torch.softmax(logits, dim=-1)
            # bandwidth counts bytes read + written, so reading B bytes takes B / bandwidth.
            one_read_us = batch * vocab * 4 / bandwidth * 1e6
            for name in ops:
                kernel, native = all_cases[name]
                k_us = median_us(lambda: kernel(probs, logits), device, warmup, runs)
                t_us = median_us(lambda: native(probs, logits), device, warmup, runs)
                if name not in host and device.type == "cuda":
                    host[name] = host_us(lambda: kernel(probs, logits), device)
                row = {
                    "op": name,
                    "batch": batch,
                    "vocab": vocab,
                    "kernel_us": round(k_us, 1),
                    "torch_us": round(t_us, 1),
                    "speedup": round(t_us / k_us, 2),
                    "one_read_us": round(one_read_us, 2),
                    "x_read": round(k_us / one_read_us, 1),
                    "host_us": round(host.get(name, float("nan")), 1),
                }
                line = f"{name:28s} {batch:4d} x {vocab:6d}  kernel {k_us:8.1f} us"
                for version, fcases in fi_cases.items():
                    f_us = float("nan")
                    if name in fcases:
                        f_us = median_us(lambda: fcases[name](probs, logits), device, warmup, runs)
                    row[f"fi_{version}_us"] = round(f_us, 1)
                    line += f"  FI {version} {f_us:8.1f} us"
                rows.append(row)
                log(
                    f"{line}  torch {t_us:8.1f} us  speed-up {t_us / k_us:6.1f}x"
                    f"  {k_us / one_read_us:6.1f}x one read  host {row['host_us']:.1f} us"
                )
    return rows


# --------------------------------------------------------------------------- report


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path):
    with open(path) as f:
        return [
            {k: (v if k == "op" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)
        ]


def write_markdown(rows, path, title):
    """One table per vocab: our kernel, FlashInfer's launchers (when measured), the
    torch-native path and the speed-up over it, per op and batch; then host cost per call."""
    batches = sorted({int(r["batch"]) for r in rows})
    fi_cols = [k for k in rows[0] if k.startswith("fi_")]
    fi_names = " / ".join("FlashInfer " + k[3:-3] for k in fi_cols)
    lines = [f"# {title}", ""]
    for vocab in sorted({int(r["vocab"]) for r in rows}):
        lines += [
            f"## vocab {vocab}",
            "",
            "device us: sgl_kernel"
            + (f" / {fi_names}" if fi_cols else "")
            + " / torch-native (speed-up over torch-native); x one read of the probabilities",
            "",
        ]
        lines.append("| op | " + " | ".join(f"batch {b}" for b in batches) + " |")
        lines.append("|---|" + "---|" * len(batches))
        for op in dict.fromkeys(r["op"] for r in rows):
            cells = []
            for b in batches:
                r = next(
                    (
                        r
                        for r in rows
                        if r["op"] == op and int(r["vocab"]) == vocab and int(r["batch"]) == b
                    ),
                    None,
                )
                if r is None:
                    cells.append("")
                    continue
                times = [f"{r['kernel_us']:.1f}"] + [
                    "-" if r[c] != r[c] else f"{r[c]:.1f}" for c in fi_cols
                ]
                cells.append(
                    " / ".join(times)
                    + f" / {r['torch_us']:.1f} ({r['speedup']:.1f}x); {r['x_read']:.0f}x"
                )
            lines.append(f"| {op} | " + " | ".join(cells) + " |")
        lines.append("")
    if "host_us" in rows[0]:
        lines += ["## host cost per call (CPU us, GPU busy)", "", "| op | host us |", "|---|---|"]
        for op in dict.fromkeys(r["op"] for r in rows):
            lines.append(f"| {op} | {next(r['host_us'] for r in rows if r['op'] == op):.1f} |")
        lines.append("")
    Path(path).write_text("\n".join(lines))


def plot(rows, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = sorted({r["op"] for r in rows})
    vocabs = sorted({int(r["vocab"]) for r in rows})
    fig, axes = plt.subplots(
        len(ops), len(vocabs), figsize=(4 * len(vocabs), 2.6 * len(ops)), squeeze=False
    )
    for i, op in enumerate(ops):
        for j, vocab in enumerate(vocabs):
            ax = axes[i][j]
            sel = sorted(
                (r for r in rows if r["op"] == op and int(r["vocab"]) == vocab),
                key=lambda r: r["batch"],
            )
            b = [int(r["batch"]) for r in sel]
            ax.plot(b, [r["kernel_us"] for r in sel], "o-", color="C0", label="sgl_kernel")
            fi_cols = [c for c in rows[0] if c.startswith("fi_")]
            for n, col in enumerate(fi_cols, 1):
                pts = [(x, r[col]) for x, r in zip(b, sel) if r[col] == r[col]]  # not NaN
                if pts:
                    ax.plot(*zip(*pts), "x:", color=f"C{n}", label="FlashInfer " + col[3:-3])
            ax.plot(b, [r["torch_us"] for r in sel], "s--", color="C9", label="torch-native")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{op}\nvocab {vocab}", fontsize=8)
            ax.set_xlabel("batch", fontsize=7)
            ax.set_ylabel("us", fontsize=7)
            ax.tick_params(labelsize=7)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9, wrap=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default=None, help="cuda or musa (default: the GPU present)")
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--vocabs", type=int, nargs="+", default=list(VOCABS))
    parser.add_argument("--ops", nargs="+", default=None, help="subset of ops (default: all)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--csv", type=Path, help="write the results as CSV")
    parser.add_argument("--plot", type=Path, help="write a PNG: time vs batch per op and vocab")
    parser.add_argument("--markdown", type=Path, help="write the results as markdown tables")
    parser.add_argument("--from-csv", type=Path, help="report an earlier CSV instead of measuring")
    parser.add_argument(
        "--flashinfer",
        action="append",
        default=[],
        metavar="VERSION=INCLUDE_DIR",
        help="also time FlashInfer VERSION's own launchers, built against INCLUDE_DIR",
    )
    parser.add_argument(
        "--build-only", action="store_true", help="build the --flashinfer launchers and stop"
    )
    parser.add_argument("--title", default="sgl_kernel sampling vs torch-native")
    args = parser.parse_args(argv)

    if args.build_only:
        for spec in args.flashinfer:
            version, _, include_dir = spec.partition("=")
            load_flashinfer_launchers(version, include_dir)
            print("built FlashInfer", version)
        return
    if args.from_csv:
        rows = read_csv(args.from_csv)
    else:
        device = args.device or ("cuda" if torch.cuda.is_available() else "musa")
        if not _device_module(torch.device(device)).is_available():
            sys.exit("bench_sampling.py: no GPU found; the benchmark times GPU kernels")
        device = torch.device(device)
        ops = args.ops or list(cases())
        print(
            f"# {torch.cuda.get_device_name(device) if device.type == 'cuda' else device}, torch {torch.__version__}"
        )
        flashinfer = {}
        for spec in args.flashinfer:
            version, _, include_dir = spec.partition("=")
            flashinfer[version] = load_flashinfer_launchers(version, include_dir)
        rows = run(device, args.batches, args.vocabs, ops, args.warmup, args.runs, flashinfer)
    if args.csv:
        write_csv(rows, args.csv)
    if args.markdown:
        write_markdown(rows, args.markdown, args.title)
    if args.plot:
        plot(rows, args.plot, args.title)


if __name__ == "__main__":
    main()
