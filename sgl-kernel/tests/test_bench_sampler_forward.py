"""Issue #16's benchmark (sgl-kernel/benchmark/bench_sampler_forward.py) runs on the CPU
with --quick and writes every part of its report; its targets table says met or missed
from the numbers it is given."""

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmark"
SCRIPT = BENCH_DIR / "bench_sampler_forward.py"
LOGITS_OP = "top_k_top_p_min_p_sampling_from_logits"
TYPES = {
    "temperature", "top-p 0.9", "top-k 50", "min-p 0.05", "greedy", "menu (8 settings)",
    "one seeded",
}  # fmt: skip
FILTERS = {"keep-all", "top-p 0.9", "top-k 50", "min-p 0.05", "top-k 50 + top-p 0.9"}

needs_sglang = pytest.mark.skipif(
    importlib.util.find_spec("sglang") is None, reason="the benchmark calls sglang's Sampler"
)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@needs_sglang
def test_quick_cpu_run_writes_every_part(tmp_path):
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    forward = read_csv(tmp_path / "forward.csv")
    for backend in ("flashinfer", "pytorch"):
        for batch in (1, 8):
            rows = [r for r in forward if r["backend"] == backend and int(r["batch"]) == batch]
            assert {r["request"] for r in rows} == TYPES, (backend, batch)
            # Every request type ran through Sampler.forward (no error note, a time).
            assert all(float(r["device_us"]) > 0 and not r["note"] for r in rows), rows
    floor = [r for r in forward if r["request"] == "one read (amax)"]
    assert sorted(int(r["batch"]) for r in floor) == [1, 8]

    grid = read_csv(tmp_path / "op_grid.csv")
    has_logits_op = hasattr(__import__("sgl_kernel"), LOGITS_OP)
    impls = {"one read (amax)", "ours: probs op", "torch sort path"}
    impls |= {"ours: logits op"} if has_logits_op else set()
    for filter_name in FILTERS:
        for shape in ("peaked", "flat"):
            for batch in (1, 8):
                cell = [
                    r for r in grid
                    if (r["filter"], r["shape"], int(r["batch"])) == (filter_name, shape, batch)
                ]  # fmt: skip
                assert {r["impl"] for r in cell} == impls, (filter_name, shape, batch)
                assert all(float(r["device_us"]) > 0 for r in cell)

    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# Sampler.forward and the sampling op grid (issue #16) on CPU")
    assert "## The issue's targets" in report and "## The op grid" in report
    assert (f"{LOGITS_OP} is not in this build" in report) == (not has_logits_op)
    for png in ("forward.png", "op_grid.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def bench_module(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    return pytest.importorskip("bench_sampler_forward")


def _forward(request, batch, us, mib=0.5):
    return dict(
        backend="flashinfer", request=request, batch=batch, vocab=128256, device_us=us,
        extra_mib=mib,
    )  # fmt: skip


def _grid(impl, filter_name, batch, us, shape="peaked", vocab=128256):
    return dict(impl=impl, filter=filter_name, shape=shape, batch=batch, vocab=vocab, device_us=us)


@needs_sglang
def test_targets_say_met_and_missed(bench_module):
    m = bench_module
    bench = m.Bench(torch.device("cuda"), 0, 1, m.Budget(1))  # no GPU used: verdicts only
    bench.forward_rows = [
        _forward("temperature", 1, 19.0),
        _forward("top-k 50", 1, 21.0),  # misses 20 us, and 21 / 12 > 1.3
        _forward("greedy", 1, 12.0),
        _forward("menu (8 settings)", 64, 55.0),
        _forward("temperature", 64, 50.0, mib=2.0),  # 2 MiB: the memory target is missed
        _forward("menu (8 settings)", 256, 130.0),  # misses 120 us
    ]
    best = f"{m.FI_BEST} 0.7.2.post1"
    bench.grid_rows = [
        _grid(best, "keep-all", 1, 10.0),
        _grid(m.OURS_LOGITS, "keep-all", 1, 4.0),  # 0.4x
        _grid(best, "top-k 50 + top-p 0.9", 1, 40.0),
        _grid(m.OURS_LOGITS, "top-k 50 + top-p 0.9", 1, 14.0),  # 0.35x, <= 15 us
        _grid(best, "top-p 0.9", 8, 20.0),
        _grid(m.OURS_LOGITS, "top-p 0.9", 8, 22.0),  # 1.1x: misses "every cell"
    ]
    verdicts = {t: v for t, _, v in m.check_targets(bench, "0.7.2.post1")}

    def verdict(start):
        (found,) = [v for t, v in verdicts.items() if t.startswith(start)]
        return found

    assert verdict("Sampler.forward batch 1 <= 20 us") == "NO"
    assert verdict("Sampler.forward menu, batch 64") == "yes"
    assert verdict("Sampler.forward menu, batch 256") == "NO"
    assert verdict("batch 1: slowest / fastest") == "NO"  # 21 / 12
    assert verdict("batch 64: slowest / fastest") == "yes"  # 55 / 50
    assert verdict("peak extra memory") == "NO"
    assert verdict(f"{m.OURS_LOGITS} <= 1.0x") == "NO"
    assert verdict(f"{m.OURS_LOGITS}: median ratio") == "yes"  # median of 0.4, 0.35, 1.1
    assert verdict(f"{m.OURS_LOGITS}: batch 1 x 128256") == "yes"
    assert verdict(f"op grid, {m.OURS_PROBS}") == "-"  # not measured
