"""Run every op on rows of NaN, rows of zeros and mixed rows; meant for

    compute-sanitizer --tool memcheck --error-exitcode 1 python sanitize_invalid_rows.py

A row with no positive probability must never make a kernel read out of bounds
(FlashInfer 0.5.3 did: 3rdparty/patches/0001) or spin forever (0002). Exits non-zero
if a result breaks the defined contract (sampled id 0, renormalised row all zero).
"""

import sys

import torch

import sgl_kernel


def main():
    device = "cuda" if torch.cuda.is_available() else "musa"
    failures = []
    for batch, vocab in [(1, 111), (7, 32000), (33, 128256)]:
        probs = torch.softmax(torch.randn(batch, vocab, device=device), -1)
        probs[0] = float("nan")
        if batch > 1:
            probs[1] = 0.0
            probs[2, ::2] = float("nan")
        bad_rows = [0, 1] if batch > 1 else [0]
        calls = {
            "sampling_from_probs": lambda: sgl_kernel.sampling_from_probs(probs),
            "top_k": lambda: sgl_kernel.top_k_sampling_from_probs(probs, 50),
            "top_p": lambda: sgl_kernel.top_p_sampling_from_probs(probs, 0.9),
            "min_p": lambda: sgl_kernel.min_p_sampling_from_probs(probs, 0.05),
            "joint": lambda: sgl_kernel.top_k_top_p_sampling_from_probs(
                probs, 50, 0.9, filter_apply_order="joint"
            ),
            "top_k_first": lambda: sgl_kernel.top_k_top_p_sampling_from_probs(probs, 50, 0.9),
        }
        for name, call in calls.items():
            ids = call()
            if (
                ids[bad_rows].tolist() != [0] * len(bad_rows)
                or int(ids.max()) >= vocab
                or int(ids.min()) < 0
            ):
                failures.append(f"{name} {batch}x{vocab}: {ids[:3].tolist()}")
        for name, out in {
            "top_k_renorm_probs": sgl_kernel.top_k_renorm_probs(probs, 50),
            "top_p_renorm_probs": sgl_kernel.top_p_renorm_probs(probs, 0.9),
        }.items():
            if not bool((out[bad_rows] == 0).all()):
                failures.append(f"{name} {batch}x{vocab}: invalid rows not all zero")
        masked = sgl_kernel.top_k_mask_logits(torch.log(probs), 50)
        if not bool((masked[0] == float("-inf")).all()):
            failures.append(f"top_k_mask_logits {batch}x{vocab}: NaN row not all -inf")
        print(f"{batch}x{vocab}: done", flush=True)
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print("invalid rows: every op returned its defined result")


if __name__ == "__main__":
    main()
