"""Issue 7's hazard suite: no input may hang the GPU, fault it, or sample silently wrong.

Every case of hazard_cases.py (+-inf, NaN, negatives, subnormals, unnormalised rows,
all -inf rows at vocab sizes around the kernels' tiles, one-token vocabularies, empty
batches, misaligned views, top_k of any size, per-row parameters out of range,
``indices`` with distinct per-row parameters; for the from-logits op also every logits
dtype, strided views, batch 1 and large batches, and temperatures 0 / negative / NaN /
+inf / subnormal) runs in a child process with a
per-case timeout, so a hang or a sticky device fault fails that case instead of
hanging CI. The child checks the result against the input contract (and, on a GPU,
against the CPU reference) and prints it; each case is one test here.

CPU: one child per case family. GPU: one child runs the cases in order and a new one
takes over after a timeout, a crash or a fault that leaves the device unusable;
SGL_HAZARD_ISOLATE=1 starts one child per case instead (slower, strictest).
SGL_HAZARD_RESULTS=path writes every case's result there as JSON (for the records
under sgl-kernel/benchmark/results/).
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import hazard_cases
import pytest

from sgl_kernel.testing import GPU

DRIVER = Path(__file__).with_name("hazard_cases.py")
CASE_TIMEOUT_S = 60
STARTUP_TIMEOUT_S = 120
ISOLATE = os.environ.get("SGL_HAZARD_ISOLATE") == "1"


def _reader(stream, lines: queue.Queue) -> None:
    for raw in iter(stream.readline, b""):
        lines.put(raw.decode(errors="replace").rstrip("\n"))
    lines.put(None)  # end of output: the child exited


def _kill(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the child's own session: it and its helpers
    except ProcessLookupError:
        pass
    proc.wait()


def _run_child(device: str, names: list, results: dict) -> None:
    """Run `names` in one child until it finishes, hangs or dies; fill `results`."""
    proc = subprocess.Popen(
        [sys.executable, str(DRIVER), "--device", device, *names],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    err_tail = []
    threading.Thread(
        target=lambda: err_tail.extend(proc.stderr.read().decode(errors="replace")[-3000:]),
        daemon=True,
    ).start()
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    current, deadline = None, time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            _kill(proc)
            what = f"timed out after {CASE_TIMEOUT_S} s (hang)" if current else "startup hung"
            results[current or names[0]] = {"ok": False, "error": what}
            return
        if line is None:
            proc.wait()
            time.sleep(0.1)  # let the stderr reader finish
            if current is not None:
                results[current] = {
                    "ok": False,
                    "error": f"child died (exit {proc.returncode}) during the case: "
                    + "".join(err_tail)[-1500:],
                }
            elif not results.keys() & set(names):
                for name in names:  # it never ran a case: an import error, say
                    results[name] = {"ok": False, "error": "child failed: " + "".join(err_tail)}
            return
        if line.startswith("START "):
            current, deadline = line[6:], time.monotonic() + CASE_TIMEOUT_S
        elif line.startswith("RESULT "):
            record = json.loads(line[7:])
            results[record["name"]] = record
            current = None
        # "STICKY": the child exits next; run_cases gives the cases left to a new one


def run_cases(device: str, names: list) -> dict:
    results: dict = {}
    pending = list(names)
    while pending:
        _run_child(device, pending[:1] if ISOLATE else pending, results)
        done = [n for n in pending if n in results]
        if not done:  # no progress: never loop forever
            results[pending[0]] = {"ok": False, "error": "no result from the child"}
        pending = [n for n in pending if n not in results]
    return results


_CACHE: dict = {}


def result_of(device: str, name: str, selected: set) -> dict:
    """Run the case's batch on first use: per family on the CPU, every case on a GPU;
    only the cases this session selected (pytest -k)."""
    hazard = hazard_cases.CASES[name]
    key = (device, hazard.family if device == "cpu" else "all")
    if key not in _CACHE:
        batch = [
            n
            for n, h in hazard_cases.CASES.items()
            if n in selected and (device != "cpu" or (h.family == hazard.family and not h.gpu_only))
        ]
        _CACHE[key] = run_cases(device, batch)
        if os.environ.get("SGL_HAZARD_RESULTS"):  # a JSON record of every case run so far
            record = {f"{d}/{n}": r for (d, _), rs in _CACHE.items() for n, r in rs.items()}
            Path(os.environ["SGL_HAZARD_RESULTS"]).write_text(json.dumps(record, indent=1))
    return _CACHE[key][name]


def _selected(request, device: str) -> set:
    return {
        item.callspec.params["name"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_hazard"
        and item.callspec.params.get("device") == device
    }


@pytest.mark.parametrize("name", list(hazard_cases.CASES))
def test_hazard(device, name, request):
    if hazard_cases.CASES[name].gpu_only and device == "cpu":
        pytest.skip("GPU-only size (the CPU reference is too slow for CI)")
    result = result_of(device, name, _selected(request, device))
    assert result["ok"], result["error"]


def test_the_runner_catches_a_hang_and_carries_on(monkeypatch, tmp_path):
    """A case that never returns fails alone; the cases after it still run."""
    monkeypatch.setattr(sys.modules[__name__], "CASE_TIMEOUT_S", 3)
    code = (
        "import time, sys\n"
        "print('READY', flush=True)\n"
        "for n in sys.argv[1:]:\n"
        "    if n == '--device' or n == 'cpu': continue\n"
        "    print('START ' + n, flush=True)\n"
        "    if n == 'hang': time.sleep(60)\n"
        "    if n == 'die': sys.exit(9)\n"
        '    print(\'RESULT {"name": "%s", "ok": true}\' % n, flush=True)\n'
    )
    fake = tmp_path / "fake_driver.py"
    fake.write_text(code)
    monkeypatch.setattr(sys.modules[__name__], "DRIVER", fake)
    got = run_cases("cpu", ["a", "hang", "b", "die", "c"])
    assert got["a"]["ok"] and got["b"]["ok"] and got["c"]["ok"]
    assert "timed out" in got["hang"]["error"]
    assert "child died (exit 9)" in got["die"]["error"]


def test_every_case_runs_somewhere():
    names = list(hazard_cases.CASES)
    assert len(names) == len(set(names))
    if GPU is None:
        assert any(not h.gpu_only for h in hazard_cases.CASES.values())
