"""The fused op's 512-thread instance (issue 17): the launcher takes it where a device
reports fewer than 1024 threads per block, and SGL_KERNEL_FUSED_BLOCK=512 forces it, so
it runs on a CUDA GPU too. Every case runs the op in a child process (the variable is
read once per process) under torch's profiler, which names the kernel instance launched.

GPU only (CUDA): the CPU reference has no block size. The gpu_check "tests" step runs it.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sgl_kernel
from sgl_kernel import sampling_reference as ref
from sgl_kernel.testing import GPU, fused_reference_tokens

pytestmark = pytest.mark.skipif(
    GPU is None or not torch.cuda.is_available(), reason="needs a CUDA GPU"
)

NO_K = 2**31 - 1
NAN = float("nan")

CHILD = r"""
import sys
import torch
import sgl_kernel
from torch.profiler import ProfilerActivity, profile

cases = torch.load(sys.argv[1])
tokens = []
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for args in cases:
        tokens.append(
            sgl_kernel.top_k_top_p_min_p_sampling_from_probs(
                **{name: t.cuda() for name, t in args.items()}
            ).cpu()
        )
    torch.cuda.synchronize()
events = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
names = sorted({e.name for e in events if "SeededTopKTopPMinP" in e.name})
torch.save({"tokens": tokens, "kernels": names, "device_events": len(events)}, sys.argv[2])
"""


def run_child(cases, tmp_path: Path, block: str | None):
    """(tokens per case, fused kernel names launched, or None when the profiler saw no GPU
    activity at all: no CUPTI) from a child process with SGL_KERNEL_FUSED_BLOCK=block
    (unset for None)."""
    env = dict(os.environ)
    env.pop("SGL_KERNEL_FUSED_BLOCK", None)
    if block is not None:
        env["SGL_KERNEL_FUSED_BLOCK"] = block
    package_root = str(Path(sgl_kernel.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([package_root, env.get("PYTHONPATH", "")])
    inputs, outputs = tmp_path / f"in-{block}.pt", tmp_path / f"out-{block}.pt"
    torch.save(cases, inputs)
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(inputs), str(outputs)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = torch.load(outputs)
    return out["tokens"], (out["kernels"] if out["device_events"] else None)


def near_tie_free_case(rows=400, seed=77):
    """Few distinct, well-separated values: the kept sets are exact and a float32 key
    near-tie has probability ~1e-6 per token pair, so every row's token is determined."""
    g = torch.Generator().manual_seed(seed)
    x = torch.tensor([1.0, 2.0, 4.0, 8.0])[torch.randint(4, (rows, 8), generator=g)]
    return dict(
        probs=x,
        top_k=torch.randint(1, 9, (rows,), generator=g, dtype=torch.int32),
        top_p=torch.tensor([0.3, 0.6, 0.95, 1.0])[torch.randint(4, (rows,), generator=g)],
        min_p=torch.tensor([0.0, 0.2, 0.3])[torch.randint(3, (rows,), generator=g)],
        seeds=torch.randint(-(2**63), 2**63 - 1, (rows,), generator=g),
        positions=torch.randint(0, 2**40, (rows,), generator=g),
    )


def random_case(vocab, rows, seed):
    """Hostile rows (ties, NaN, negatives, unnormalised) with edge parameters, plus flat
    rows (more than 1024 tokens at or above the floor: the candidate buffer overflows)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.round(torch.randn(rows, vocab, generator=g) * 8) / 4
    x = torch.softmax(logits, dim=-1) * torch.rand(rows, 1, generator=g) * 3
    x[torch.rand(rows, vocab, generator=g) < 0.05] = NAN
    x[torch.rand(rows, vocab, generator=g) < 0.05] *= -1
    x[: rows // 4] = 1.0 / vocab  # flat rows
    pick = lambda values: torch.tensor(values)[torch.randint(len(values), (rows,), generator=g)]  # noqa: E731
    return dict(
        probs=x,
        top_k=pick([1, 5, 40, 2000, NO_K]).to(torch.int32),
        top_p=pick([0.002, 0.3, 0.9, 1.0]).float(),
        min_p=pick([0.0, 0.01, 0.5]).float(),
        seeds=torch.randint(-(2**63), 2**63 - 1, (rows,), generator=g),
        positions=torch.randint(0, 2**40, (rows,), generator=g),
    )


def test_gpu_the_512_thread_instance_samples_like_the_default(tmp_path):
    exact = near_tie_free_case()
    hostile = [random_case(1000, 300, 5), random_case(4096, 100, 6), random_case(128256, 40, 7)]
    cases = [exact] + hostile
    default, default_kernels = run_child(cases, tmp_path, None)
    small, small_kernels = run_child(cases, tmp_path, "512")
    if default_kernels is not None and small_kernels is not None:  # the instance launched
        # demangled "...Kernel<1024u>(...)" or mangled "...KernelILj1024EE..."
        assert default_kernels and all("1024" in n and "512" not in n for n in default_kernels), (
            default_kernels
        )
        assert small_kernels and all("512" in n and "1024" not in n for n in small_kernels), (
            small_kernels
        )
    else:
        print("the profiler saw no GPU activity (no CUPTI): instances not checked")

    # Near-tie-free rows: the same token from both instances, and the reference's.
    want = fused_reference_tokens(**{("x" if n == "probs" else n): t for n, t in exact.items()})
    assert torch.equal(small[0].long(), default[0].long())
    assert torch.equal(small[0].long(), want)

    # Hostile rows: every token of the small instance in its row's kept set (token 0 for
    # an empty set), and the same token as the default instance. Both compute the same
    # Gumbel keys, bin masses and bin scan (threads past 511 own no bins); only the row
    # total S is summed over other per-thread slices, so the top-p limit p * S can move
    # by a float64 rounding: a row whose cut lies within that of a token's mass may
    # differ (probability ~1e-13 per row). One differing row per case is allowed.
    for case, got, other in zip(hostile, small[1:], default[1:]):
        keep = ref.fused_keep(case["probs"], case["top_k"], case["top_p"], case["min_p"])
        rows = keep.size(0)
        got = got.long()
        inside = keep[torch.arange(rows), got] | (~keep.any(-1) & (got == 0))
        assert bool(inside.all()), f"rows outside the kept set: {torch.nonzero(~inside).view(-1)}"
        differ = torch.nonzero(got != other.long()).view(-1).tolist()
        assert len(differ) <= 1, f"the instances differ on rows {differ}"


def test_gpu_an_unknown_forced_block_size_is_a_clear_error(tmp_path):
    env = dict(os.environ, SGL_KERNEL_FUSED_BLOCK="300")
    package_root = str(Path(sgl_kernel.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([package_root, env.get("PYTHONPATH", "")])
    code = (
        "import torch, sgl_kernel\n"
        "p = torch.softmax(torch.randn(2, 50, device='cuda'), -1)\n"
        "try:\n"
        "    sgl_kernel.top_k_top_p_min_p_sampling_from_probs(p, 5, 0.9, 0.0)\n"
        "except RuntimeError as err:\n"
        "    print('raised:', err)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "raised:" in result.stdout and "kernel launch failed" in result.stdout
    assert "SGL_KERNEL_FUSED_BLOCK must be 512 or 1024 (or unset), got '300'" in result.stderr
