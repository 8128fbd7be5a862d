"""One Sampler step of issue #9: today's kernel path vs the fused seeded op
`top_k_top_p_min_p_sampling_from_probs`, the torch-native sort path and FlashInfer's
launchers, with the issue's targets checked in the same run.

    PYTHONPATH=sgl-kernel/python:python python sgl-kernel/benchmark/bench_sampler_step.py \
        --out DIR [--flashinfer 0.7.2.post1=INCLUDE_DIR] [--quick]

Cases (vocab 128256 on a GPU; tiny sizes on the CPU, where only the timings' plumbing
is exercised):

- menu, 64 and 256 requests: the synthetic main job's mix of settings (greedy,
  temperature, top-k, top-p, min-p; sglang.bench_sampler_synthetic.realistic_batch)
  over its Zipf-shaped logits, probabilities = softmax(logits / temperature).
  "today" = what main's Sampler._sample_with_kernels launches for that batch (top-k
  renorm + top-p renorm + min-p sampling when any row uses min-p, else the joint
  kernel), called through the sgl_kernel wrappers; "fused step" = seeds drawn on the
  device for the unseeded rows + the fused op (what a Sampler using the op pays);
  "fused op" = the op alone; the sort path = the Sampler's pytorch backend
  (top_k_top_p_min_p_sampling_from_probs_torch); FlashInfer = its joint top-k/top-p
  launcher, which takes one scalar k and p for the batch and has no min-p.
- batch 1, top-k 50 + top-p 0.9: fused vs today's joint kernel vs FlashInfer's joint.
- seeded, 256 requests with top-k 50 + top-p 0.9 (the issue's seeded rows): none, one
  or all rows carrying a sampling_seed. "today" = main's Sampler._sample on the kernel
  backend (the joint kernel for the batch, then the seeded sort path for the seeded
  rows); the fused step costs the same whatever is seeded. Ratios are to the unseeded
  fused step; "extra MiB" = peak allocated memory of one step above what was allocated
  before it.
- graph (GPU only): the fused op captured in a CUDA graph with static inputs, replayed
  with positions advanced in place; each replay must draw new tokens and equal an eager
  call at the same positions.

Device times are the median of --runs calls timed with device events (launch hidden,
L2 flushed: bench_timing.device_us); on the CPU, the median of time.perf_counter
around each call. "host us" is the CPU cost of one call while the GPU is busy
(bench_sampling.host_us), measured for the kernel paths (the sort path launches too
many kernels for that measurement to mean launch cost).

Writes sampler_step.csv, sampler_step.md and sampler_step.png to --out. The fused op is
looked up at run time: without it (a build from before issue #9) its rows are skipped
with a note.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import math
import sys
from pathlib import Path

# bench_sampling (same folder): timing helpers, FlashInfer launcher builds, CSV writer.
import bench_sampling as bs
import torch
from bench_timing import card_name, device_us, extra_mib, host_us, met

try:
    import sgl_kernel as sk
    from sglang.bench_sampler_synthetic import realistic_batch
    from sglang.srt.layers.sampler import top_k_top_p_min_p_sampling_from_probs_torch
    from sglang.srt.sampling.sampling_batch_info import SamplingBatchInfo
    from sglang.srt.sampling.sampling_params import SamplingParams
except ImportError as err:  # a clear message instead of a traceback
    sys.exit(
        f"bench_sampler_step.py needs sgl_kernel and sglang importable "
        f"(PYTHONPATH=sgl-kernel/python:python): {err}"
    )

FUSED_NAME = "top_k_top_p_min_p_sampling_from_probs"
VOCAB = 128256
MENU_BATCHES = (64, 256)
SEEDED_BATCH = 256
# Issue #9's targets (device us at vocab 128256) and its "today" measurements.
MENU_TARGET_US = {64: 150.0, 256: 320.0}
# The issue's seeded numbers (7525 us for one seeded row among 256) predate main's
# per-row seeded path, which no longer sends the whole batch to the sort path.
ISSUE_US = {
    ("menu", 64, "today"): 565.0,
    ("menu", 256, "today"): 1038.0,
    ("menu", 64, "joint"): 155.0,
    ("batch1", 1, "today"): 58.0,
    ("seeded", 256, "today"): 362.0,
}
MOONSHOT_US = 25.0
SEEDED_MAX_RATIO, SEEDED_MAX_MIB = 1.1, 16.0
FIRST_POSITION = 1000  # positions of the tokens being sampled; any value works
COLUMNS = (
    "op",
    "case",
    "batch",
    "vocab",
    "device_us",
    "host_us",
    "extra_mib",
    "ratio",
    "ratio_to",
    "target",
    "met",
    "issue_us",
    "note",
)


def fused_op():
    """The fused op if this build registers it, else None."""
    return getattr(torch.ops.sgl_kernel, FUSED_NAME, None)


# --------------------------------------------------------------------------- batches


class Step:
    """One batch's probabilities, per-row parameters and seeds on `device`."""

    def __init__(self, logits, params, device):
        self.info = SamplingBatchInfo.from_sampling_params(params, device)
        self.probs = torch.softmax(logits.to(device) / self.info.temperatures, dim=-1)
        self.batch, self.vocab = self.probs.shape
        self.device = device
        self.positions = torch.arange(self.batch, dtype=torch.int64, device=device)
        self.positions += FIRST_POSITION
        self.out = torch.empty(self.batch, dtype=torch.int32, device=device)
        # Seeds drawn once, for timing the op without the per-step draw.
        self.fixed_seeds = torch.randint(
            -(2**63), 2**63 - 1, (self.batch,), generator=torch.Generator().manual_seed(2)
        ).to(device)
        # Which rows carry a request's own seed: the fused step keeps those and draws
        # the others from the device generator every step, as the spec says.
        self.seeded_mask = torch.zeros(self.batch, dtype=torch.bool, device=device)
        if self.info.seeded_rows is not None:
            self.seeded_mask[self.info.seeded_rows] = True
        self.all_seeded = self.info.seeded_rows is not None and len(self.info.seeded_rows) == len(
            params
        )

    def kernel_names(self) -> str:
        """The kernels today's path launches for this batch, as in the Sampler."""
        info = self.info
        if not (info.need_top_k_sampling or info.need_top_p_sampling or info.need_min_p_sampling):
            return "sampling_from_probs"
        if info.need_min_p_sampling:
            names = ["top_k_renorm"] * info.need_top_k_sampling
            names += ["top_p_renorm"] * info.need_top_p_sampling
            return " + ".join(names + ["min_p_sampling"])
        return "joint top-k/top-p kernel"


def menu_step(batch, vocab, device) -> Step:
    logits, params = realistic_batch(batch, vocab)
    return Step(logits, params, device)


def top_k_top_p_step(batch, vocab, device, seeded_rows=0) -> Step:
    """The issue's seeded-case batch: top-k 50 + top-p 0.9 on every row, the first
    `seeded_rows` rows with a sampling_seed of their own."""
    params = [
        SamplingParams(
            temperature=1.0,
            top_k=50,
            top_p=0.9,
            sampling_seed=(1234 + i) if i < seeded_rows else None,
        )
        for i in range(batch)
    ]
    return Step(_zipf_logits(batch, vocab), params, device)


@functools.lru_cache(maxsize=2)
def _zipf_logits(batch, vocab):
    """The main job's logits (their settings are not used): built once for the three
    seeded variants, as building 256 x 128256 takes seconds on the host."""
    return realistic_batch(batch, vocab, seed=1)[0]


# --------------------------------------------------------------------------- the paths


def today_kernels(s: Step):
    """Main's Sampler._sample_with_kernels, through the same sgl_kernel wrappers."""
    info, probs = s.info, s.probs
    if not (info.need_top_k_sampling or info.need_top_p_sampling or info.need_min_p_sampling):
        return sk.sampling_from_probs(probs)
    if info.need_min_p_sampling:
        if info.need_top_k_sampling:
            probs = sk.top_k_renorm_prob(probs, info.top_ks)
        if info.need_top_p_sampling:
            probs = sk.top_p_renorm_prob(probs, info.top_ps)
        return sk.min_p_sampling_from_probs(probs, info.min_ps)
    return sk.top_k_top_p_sampling_from_probs(
        probs, info.top_ks, info.top_ps, filter_apply_order="joint"
    )


def today_step(s: Step):
    """Main's Sampler._sample on the kernel backend: the kernels for the whole batch,
    then the seeded sort path for the seeded rows only."""
    ids = today_kernels(s)
    info = s.info
    if info.sampling_seed is None:
        return ids
    rows = info.seeded_rows
    if rows is None:
        rows = torch.arange(s.batch, device=s.device)
    seeded = top_k_top_p_min_p_sampling_from_probs_torch(
        s.probs[rows],
        info.top_ks[rows],
        info.top_ps[rows],
        info.min_ps[rows],
        info.need_min_p_sampling,
        info.sampling_seed[rows],
        s.positions[rows],
    )
    return ids.long().index_copy(0, rows, seeded)


def sort_path(s: Step):
    info = s.info
    return top_k_top_p_min_p_sampling_from_probs_torch(
        s.probs, info.top_ks, info.top_ps, info.min_ps, info.need_min_p_sampling
    )


def step_seeds(s: Step):
    """Seeds of one step: drawn on the device for rows without a seed of their own
    (graph-capturable), the request's sampling_seed for the others."""
    if s.all_seeded:
        return s.info.sampling_seed
    drawn = torch.randint(-(2**63), 2**63 - 1, (s.batch,), device=s.device, dtype=torch.int64)
    if s.info.sampling_seed is None:
        return drawn
    return torch.where(s.seeded_mask, s.info.sampling_seed, drawn)


def fused_call(op, s: Step, seeds):
    info = s.info
    op(s.probs, s.out, info.top_ks, info.top_ps, info.min_ps, seeds, s.positions)
    return s.out


def fused_step(op, s: Step):
    return fused_call(op, s, step_seeds(s))


# --------------------------------------------------------------------------- measuring


class Recorder:
    def __init__(self, device, warmup, runs, log=print):
        self.device, self.warmup, self.runs, self.log = device, warmup, runs, log
        self.rows = []
        self.notes = []

    def measure(self, op, case, s: Step, fn, *, host=True, note="", issue=None):
        """Time fn on s; `issue` names the issue's measurement of the same path."""
        row = dict.fromkeys(COLUMNS, "")
        row.update(op=op, case=case, batch=s.batch, vocab=s.vocab, note=note)
        row["device_us"] = round(device_us(fn, self.device, self.warmup, self.runs), 1)
        row["host_us"] = round(host_us(fn, self.device) if host else float("nan"), 1)
        row["extra_mib"] = round(extra_mib(fn, self.device), 1)
        if s.vocab == VOCAB:
            row["issue_us"] = ISSUE_US.get((case, s.batch, issue), "")
        self.rows.append(row)
        self.log(
            f"{case:8s} {s.batch:4d} x {s.vocab:6d}  {op:58s} {row['device_us']:9.1f} us"
            f"  host {row['host_us']:6.1f} us  +{row['extra_mib']:.1f} MiB"
        )
        return row


def set_ratio(rows, ref, label):
    for r in rows:
        r["ratio"] = round(r["device_us"] / ref["device_us"], 2)
        r["ratio_to"] = label


def flashinfer_joint(fi_modules):
    """(label, call) of each loaded FlashInfer release's joint launcher: one scalar top-k
    50 / top-p 0.9 for the batch (bench_sampling's binding), no min-p."""
    return [
        (f"FlashInfer {v} joint (scalar k 50, p 0.9; no min-p)", bs.flashinfer_cases(m))
        for v, m in fi_modules.items()
    ]


# --------------------------------------------------------------------------- cases


def run_menu(rec: Recorder, op, fi, batches, vocab, on_gpu):
    for batch in batches:
        s = menu_step(batch, vocab, rec.device)
        today = rec.measure(
            f"today: {s.kernel_names()}", "menu", s, lambda: today_kernels(s), issue="today"
        )
        rows = [today]
        if s.info.need_min_p_sampling:
            rows.append(
                rec.measure(
                    "today's joint kernel alone (drops min-p)",
                    "menu",
                    s,
                    lambda: sk.top_k_top_p_sampling_from_probs(
                        s.probs, s.info.top_ks, s.info.top_ps, filter_apply_order="joint"
                    ),
                    issue="joint",
                )
            )
        target = MENU_TARGET_US.get(batch) if vocab == VOCAB else None
        if op is not None:
            for name, fn in (
                ("fused step (seeds drawn + op)", lambda: fused_step(op, s)),
                ("fused op alone", lambda: fused_call(op, s, s.fixed_seeds)),
            ):
                r = rec.measure(name, "menu", s, fn)
                if target is not None:
                    r["target"] = f"<= {target:.0f} us"
                    r["met"] = met(r["device_us"] <= target, on_gpu)
                rows.append(r)
        rows.append(
            rec.measure(
                "torch sort path (pytorch backend)", "menu", s, lambda: sort_path(s), host=False
            )
        )
        for label, calls in flashinfer_joint(fi):
            rows.append(
                rec.measure(label, "menu", s, lambda c=calls: c["top_k_top_p_joint"](s.probs, None))
            )
        set_ratio(rows, today, "today")


def run_batch1(rec: Recorder, op, fi, vocab, on_gpu):
    s = top_k_top_p_step(1, vocab, rec.device)
    today = rec.measure("today: joint kernel", "batch1", s, lambda: today_kernels(s), issue="today")
    rows = [today]
    fi_rows = []
    for label, calls in flashinfer_joint(fi):
        fi_rows.append(
            rec.measure(label, "batch1", s, lambda c=calls: c["top_k_top_p_joint"](s.probs, None))
        )
    rows += fi_rows
    # The target is FlashInfer 0.7.2's launcher, measured here; the moonshot is absolute.
    ref = next((r for r in fi_rows if "0.7.2" in r["op"]), None)
    if op is not None:
        for name, fn in (
            ("fused step (seeds drawn + op)", lambda: fused_step(op, s)),
            ("fused op alone", lambda: fused_call(op, s, s.fixed_seeds)),
        ):
            r = rec.measure(name, "batch1", s, fn)
            targets, met = [], []
            if ref is not None:
                targets.append(f"<= FlashInfer 0.7.2 joint ({ref['device_us']:.1f} us)")
                met.append(met(r["device_us"] <= ref["device_us"], on_gpu))
            if vocab == VOCAB:
                targets.append(f"moonshot <= {MOONSHOT_US:.0f} us")
                met.append("moonshot " + met(r["device_us"] <= MOONSHOT_US, on_gpu))
            r["target"], r["met"] = "; ".join(targets), "; ".join(met)
            rows.append(r)
    set_ratio(rows, today, "today")


def run_seeded(rec: Recorder, op, batch, vocab, on_gpu):
    variants = [("no seeds", 0), ("1 seeded", 1), (f"all {batch} seeded", batch)]
    steps = {label: top_k_top_p_step(batch, vocab, rec.device, n) for label, n in variants}
    rows = []
    for label, s in steps.items():
        what = "joint kernel" if label == "no seeds" else "joint kernel + seeded sort path"
        # No host time: the seeded sort path queues too many kernels for host_us.
        rows.append(
            rec.measure(
                f"today, {label}: {what}",
                "seeded",
                s,
                lambda s=s: today_step(s),
                host=False,
                issue="today" if label == "no seeds" else None,
            )
        )
    if op is None:
        set_ratio(rows, rows[0], "today, no seeds")  # without the op
        return
    fused = {
        label: rec.measure(f"fused step, {label}", "seeded", s, lambda s=s: fused_step(op, s))
        for label, s in steps.items()
    }
    rows += fused.values()
    set_ratio(rows, fused["no seeds"], "fused, no seeds")
    for label, r in fused.items():
        if label == "no seeds":
            continue
        r["target"] = f"<= {SEEDED_MAX_RATIO}x unseeded fused, <= {SEEDED_MAX_MIB:.0f} MiB"
        ok = r["ratio"] <= SEEDED_MAX_RATIO and (not on_gpu or r["extra_mib"] <= SEEDED_MAX_MIB)
        r["met"] = met(ok, on_gpu)


def graph_demo(rec: Recorder, op, vocab, replays=4, batch=8):
    """Capture the fused op with static inputs, replay with positions advanced in
    place; True when every replay drew new tokens and matched an eager call."""
    device = rec.device
    logits = torch.randn(batch, vocab, generator=torch.Generator().manual_seed(5))
    _, params = realistic_batch(batch, 16)  # the menu's settings over flat logits
    s = Step(logits, params, device)
    seeds = torch.randint(
        -(2**63), 2**63 - 1, (batch,), generator=torch.Generator().manual_seed(6)
    ).to(device)

    def call(out):
        op(s.probs, out, s.info.top_ks, s.info.top_ps, s.info.min_ps, seeds, s.positions)

    side = torch.cuda.Stream(device)  # warm up off the capture stream, as torch advises
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        call(s.out)
    torch.cuda.current_stream(device).wait_stream(side)
    torch.cuda.synchronize(device)
    before = previous = s.out.clone()  # eager tokens at the first positions
    first = int(s.positions[0])
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        call(s.out)

    table, ok = [], True
    for i in range(1, replays + 1):
        s.positions += 1  # in place: the graph reads the new positions
        graph.replay()
        replayed = s.out.clone()
        eager = torch.empty_like(s.out)
        call(eager)
        torch.cuda.synchronize(device)
        same = torch.equal(replayed, eager)
        changed = not torch.equal(replayed, previous)
        ok &= same and changed
        table.append((i, int(s.positions[0]), replayed.tolist(), same, changed))
        previous = replayed
    lines = [
        "| replay | position of row 0 | tokens (graph replay) | = eager | changed |",
        "|---|---|---|---|---|",
        f"| eager, before capture | {first} | {' '.join(map(str, before.tolist()))} | - | - |",
    ]
    for i, pos, toks, same, changed in table:
        lines.append(
            f"| {i} | {pos} | {' '.join(map(str, toks))} | {'yes' if same else 'NO'} | "
            f"{'yes' if changed else 'NO'} |"
        )
    for line in lines:
        rec.log(line)
    r = rec.measure("fused op, CUDA graph replay", "graph", s, graph.replay, host=False)
    r["target"] = "capture works; replays draw new tokens = eager"
    r["met"] = "pass" if ok else "FAIL"
    r["note"] = f"menu settings over flat logits; {replays} replays"
    return lines, ok


# --------------------------------------------------------------------------- report


def _fmt(v):
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:g}"
    return str(v) if v != "" else "-"


def write_markdown(rows, notes, graph_lines, path, title):
    shown = [c for c in COLUMNS if c != "vocab"]
    lines = [f"# {title}", ""]
    lines += [f"- {n}" for n in notes] + [""]
    lines.append("| " + " | ".join(shown) + " |")
    lines.append("|" + "---|" * len(shown))
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r[c]) for c in shown) + " |")
    if graph_lines:
        lines += ["", "## CUDA graph capture of the fused op", ""] + graph_lines
    Path(path).write_text("\n".join(lines) + "\n")


def plot(rows, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((r["case"], r["batch"]) for r in rows))
    fig, axes = plt.subplots(
        len(groups), 1, figsize=(11, 1.2 + 0.42 * len(rows) + 0.6 * len(groups)), squeeze=False
    )
    for ax, (case, batch) in zip(axes[:, 0], groups):
        sel = [r for r in rows if r["case"] == case and r["batch"] == batch]
        colors = [
            "C2"
            if r["op"].startswith("fused")
            else "C1"
            if "FlashInfer" in r["op"]
            else "C7"
            if r["op"].startswith("torch sort")
            else "C0"
            for r in sel
        ]
        ax.barh(range(len(sel)), [r["device_us"] for r in sel], color=colors)
        ax.set_yticks(range(len(sel)), [r["op"] for r in sel], fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlim(right=max(r["device_us"] for r in sel) * 2)  # room for the labels
        for i, r in enumerate(sel):
            ax.text(r["device_us"], i, f" {r['device_us']:g}", va="center", fontsize=7)
        target = MENU_TARGET_US.get(batch) if case == "menu" else None
        if case == "batch1":
            target = MOONSHOT_US
        if target and sel[0]["vocab"] == VOCAB:
            ax.axvline(target, color="k", ls="--", lw=0.8, label=f"target {target:g} us")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_title(f"{case}, batch {batch}, vocab {sel[0]['vocab']}", fontsize=8)
        ax.set_xlabel("device us (log)", fontsize=7)
        ax.tick_params(axis="x", which="both", labelsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.subplots_adjust(left=0.36)  # the ops' names
    fig.savefig(path, dpi=90)


# --------------------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for CSV, markdown, plot")
    parser.add_argument("--device", default=None, help="cuda, musa or cpu (default: GPU if any)")
    parser.add_argument("--quick", action="store_true", help="smoke run: few timed calls")
    parser.add_argument("--vocab", type=int, default=None, help="default 128256 (CPU: 1024)")
    parser.add_argument("--menu-batches", type=int, nargs="+", default=None)
    parser.add_argument("--seeded-batch", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument(
        "--flashinfer",
        action="append",
        default=[],
        metavar="VERSION=INCLUDE_DIR",
        help="also time FlashInfer VERSION's joint launcher (see bench_sampling.py)",
    )
    args = parser.parse_args(argv)

    if args.device is None:
        gpu = torch.cuda.is_available() or (hasattr(torch, "musa") and torch.musa.is_available())
        args.device = ("cuda" if torch.cuda.is_available() else "musa") if gpu else "cpu"
    device = torch.device(args.device)
    on_gpu = device.type != "cpu"
    # The CPU runs the kernels' torch references: tiny sizes, to test the plumbing.
    vocab = args.vocab or (VOCAB if on_gpu else 1024)
    menu_batches = args.menu_batches or (list(MENU_BATCHES) if on_gpu else [8, 16])
    seeded_batch = args.seeded_batch or (SEEDED_BATCH if on_gpu else 16)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 10)
    runs = args.runs or ((10 if on_gpu else 3) if args.quick else (200 if on_gpu else 20))
    args.out.mkdir(parents=True, exist_ok=True)

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = f"Sampler step (issue #9) on {card_name(device)}, {date}, torch {torch.__version__}"
    print("#", title)
    rec = Recorder(device, warmup, runs)
    op = fused_op()
    if op is None:
        rec.notes.append(
            f"torch.ops.sgl_kernel.{FUSED_NAME} is not in this build: its rows are skipped"
        )
    fi = {}
    if on_gpu:
        for spec in args.flashinfer:
            version, _, include_dir = spec.partition("=")
            fi[version] = bs.load_flashinfer_launchers(version, include_dir)
    elif args.flashinfer:
        rec.notes.append("FlashInfer launchers are GPU-only: skipped on the CPU")
    if fi:
        rec.notes.append(
            "FlashInfer's joint launcher is bound with one scalar top-k 50 / top-p 0.9 for "
            "the whole batch and has no min-p: the closest comparison, not the same filters"
        )
    rec.notes.append(
        "today = main's Sampler kernel path through the sgl_kernel wrappers; fused step = "
        "device-drawn seeds for unseeded rows + the fused op; ratio = device us / that of "
        "the row named in ratio_to; issue_us = the issue's measurement of the same path "
        "(H200, 2026-11-28)"
    )
    rec.notes.append(f"median of {runs} timed calls after {warmup} warm-up calls each")
    for n in rec.notes:
        print("#", n)

    run_menu(rec, op, fi, menu_batches, vocab, on_gpu)
    run_batch1(rec, op, fi, vocab, on_gpu)
    run_seeded(rec, op, seeded_batch, vocab, on_gpu)
    graph_lines = []
    if device.type == "cuda" and op is not None:
        try:
            graph_lines, ok = graph_demo(rec, op, vocab)
        except Exception as err:  # a failed capture is a result to report, not a crash
            graph_lines, ok = [f"capture or replay raised: {err!r}"], False
            rec.notes.append(f"CUDA graph demo: FAIL, {err!r}")
        print("graph capture:", "pass" if ok else "FAIL")
    else:
        rec.notes.append("CUDA graph demo: skipped (needs a CUDA device and the fused op)")

    bs.write_csv(rec.rows, args.out / "sampler_step.csv")
    write_markdown(rec.rows, rec.notes, graph_lines, args.out / "sampler_step.md", title)
    plot(rec.rows, args.out / "sampler_step.png", title)
    print(f"wrote {args.out}/sampler_step.csv, .md, .png")
    missed = [r for r in rec.rows if "NO" in r["met"] or "FAIL" in r["met"]]
    for r in missed:
        print(f"target missed: {r['case']} {r['batch']} {r['op']}: {r['met']} ({r['target']})")


if __name__ == "__main__":
    main()
