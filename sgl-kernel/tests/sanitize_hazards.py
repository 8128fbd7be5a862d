"""Every hazard case in one process, for

    compute-sanitizer --tool memcheck --error-exitcode 1 python sgl-kernel/tests/sanitize_hazards.py

(GPU only). Runs each case of hazard_cases.py on the GPU: rows of NaN, +-inf,
negatives, zeros and subnormals at vocab sizes around the kernels' tiles (1 ...
131072), misaligned views, empty batches, top_k of any size, per-row parameters out
of range, ``indices`` with distinct per-row parameters, and the from-logits op on
float32 / float16 / bfloat16 logits in strided views at batch 1 and large batches.
Memcheck reports any
out-of-bounds or misaligned access; this driver exits non-zero if a result breaks
the input contract, and stops early if the device is left unusable. Draws are cut
16-fold (memcheck is slow) and the CPU comparison is skipped: test_hazards.py does
both at full size.

    python sanitize_hazards.py [--draw-scale 0.0625] [CASE ...]
"""

import argparse
import sys
import time

import hazard_cases

from sgl_kernel.testing import GPU


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="hazard cases under compute-sanitizer")
    ap.add_argument("--draw-scale", type=float, default=1 / 16)
    ap.add_argument("--device", default=GPU, help="default: the GPU (cpu: a dry run)")
    ap.add_argument("names", nargs="*", help="cases to run (default: all)")
    args = ap.parse_args(argv)
    device = args.device
    if device is None:
        print("sanitize_hazards.py needs a GPU (CUDA or MUSA)")
        return 2
    hazard_cases.OPTIONS.update(parity=False, draw_scale=args.draw_scale)
    names = args.names or [
        n for n, h in hazard_cases.CASES.items() if device != "cpu" or not h.gpu_only
    ]
    failures = []
    start = time.monotonic()
    for i, name in enumerate(names):
        result = hazard_cases.run_case(name, device)
        if not result["ok"]:
            failures.append(f"{name}: {result['error']}")
            print(f"FAIL {name}: {result['error'][:300]}", flush=True)
        if not hazard_cases.device_works(device):
            failures.append(f"{name}: the device no longer works after this case")
            print(f"STICKY after {name}; stopping", flush=True)
            break
        if i % 20 == 0:
            print(f"{i + 1}/{len(names)} cases, {time.monotonic() - start:.0f} s", flush=True)
    print(f"{len(names)} hazard cases on {device}, {len(failures)} contract violations")
    for line in failures:
        print(line[:500])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
