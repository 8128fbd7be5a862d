"""The Sampler step benchmark (sgl-kernel/benchmark/bench_sampler_step.py) runs on the CPU
with --quick and writes its report: run as a script in a child process, as the lead
runs it, so this test imports nothing from the benchmarks."""

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmark" / "bench_sampler_step.py"
FUSED = "top_k_top_p_min_p_sampling_from_probs"


@pytest.mark.skipif(
    importlib.util.find_spec("sglang") is None, reason="the benchmark reads sglang's Sampler"
)
def test_quick_cpu_run_writes_csv_markdown_and_plot(tmp_path):
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    with open(tmp_path / "sampler_step.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["case"] for r in rows} == {"menu", "batch1", "seeded"}  # no graph on the CPU
    assert {int(r["batch"]) for r in rows if r["case"] == "menu"} == {8, 16}
    for case in ("menu", "batch1", "seeded"):
        today = [r for r in rows if r["case"] == case and r["op"].startswith("today")]
        assert today and all(float(r["device_us"]) > 0 for r in today), case
    # The menu's "today" row is the kernels main's Sampler launches for a min-p batch,
    # and every ratio in its case is measured against it.
    menu_today = next(r for r in rows if r["case"] == "menu" and r["op"].startswith("today:"))
    assert menu_today["op"] == "today: top_k_renorm + top_p_renorm + min_p_sampling"
    assert float(menu_today["ratio"]) == 1.0
    # The fused op's rows are there exactly when this build registers the op.
    fused = [r for r in rows if r["op"].startswith("fused")]
    has_op = hasattr(torch.ops.sgl_kernel, FUSED)
    assert bool(fused) == has_op
    markdown = (tmp_path / "sampler_step.md").read_text()
    assert markdown.startswith("# Sampler step (issue #9) on CPU")
    assert (f"{FUSED} is not in this build" in markdown) == (not has_op)
    assert (tmp_path / "sampler_step.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
