"""Run FlashInfer's own sampling tests (tests/utils/test_sampling.py, v0.5.3) against
sgl_kernel, through the ``flashinfer`` stand-in package next to this script.

The suite is FlashInfer's and is not part of this tree: fetch it into a git-ignored
folder (the default is ``.fi-suite/test_sampling.py`` at the repository root) and
pass its path. Tests of functions we do not implement would be deselected (none are). The
report counts passes and failures per test function, and sorts failures into
"message text" (``pytest.raises(..., match=...)`` saw the right exception type with
our own wording) and "other"; the exit status is 0 only when there is no "other"
failure.

    python sgl-kernel/tests/flashinfer_compat/run_flashinfer_suite.py            # GPU
    python sgl-kernel/tests/flashinfer_compat/run_flashinfer_suite.py --device cpu \\
        -k "111-1] or 111-99]"                                                    # CPU

``--device cpu`` runs a copy of the suite with its ``"cuda:0"`` devices replaced by
``"cpu"`` (the CPU reference kernels); keep it to small cases.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
# FlashInfer functions sgl_kernel does not implement, and the tests that call them: none
# since issue 18 (softmax, sampling_from_logits, top_k_top_p_sampling_from_logits and
# chain_speculative_sampling were the last).
UNIMPLEMENTED_TESTS: tuple = ()
MESSAGE_MISMATCH = re.compile(r"Regex pattern did not match")


def _suite_for(device: str, suite: Path, workdir: Path) -> Path:
    if device == "cuda":
        return suite
    text = suite.read_text()
    copy = workdir / suite.name
    copy.write_text(text.replace('"cuda:0"', f'"{device}"'))
    return copy


def _summarise(junit: Path) -> tuple[dict, list, list]:
    counts = collections.defaultdict(collections.Counter)
    message_only, other = [], []
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        function = name.split("[")[0]
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        if failure is not None:
            text = (failure.get("message") or "") + (failure.text or "")
            kind = "message text" if MESSAGE_MISMATCH.search(text) else "other"
            counts[function][kind] += 1
            (message_only if kind == "message text" else other).append((name, text))
        elif case.find("skipped") is not None:
            counts[function]["skipped"] += 1
        else:
            counts[function]["passed"] += 1
    return counts, message_only, other


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", type=Path, default=REPO / ".fi-suite" / "test_sampling.py")
    parser.add_argument("--device", default="cuda", help="cuda (as written) or cpu")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression to narrow the run")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments, after --")
    args = parser.parse_args()
    if not args.suite.is_file():
        print(f"FlashInfer's suite not found at {args.suite}", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        suite = _suite_for(args.device, args.suite.resolve(), workdir)
        junit = workdir / "junit.xml"
        deselect = " and ".join(f"not {name}" for name in UNIMPLEMENTED_TESTS)
        if args.keyword:
            deselect = f"({args.keyword}) and {deselect}" if deselect else args.keyword
        command_k = ["-k", deselect] if deselect else []
        env = dict(os.environ)
        # The stand-in package first: the real flashinfer, if installed, must not load.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
        command = [
            sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider",
            "--rootdir", str(workdir), *command_k, f"--junitxml={junit}",
            *args.pytest_args,
        ]  # fmt: skip
        print("run:", " ".join(command), flush=True)
        subprocess.run(command, env=env, cwd=workdir)
        if not junit.is_file():
            print("pytest wrote no report", file=sys.stderr)
            return 2
        counts, message_only, other = _summarise(junit)

    print("\nper test function: passed / failed on message text only / failed otherwise / skipped")
    for function, c in sorted(counts.items()):
        print(
            f"  {function:58s} {c['passed']:5d} {c['message text']:5d} {c['other']:5d} "
            f"{c['skipped']:5d}"
        )
    total = collections.Counter()
    for c in counts.values():
        total.update(c)
    print(
        f"total: {total['passed']} passed, {total['message text']} failed on message text "
        f"only, {total['other']} failed otherwise, {total['skipped']} skipped; "
        f"deselected (not implemented): {', '.join(UNIMPLEMENTED_TESTS) or 'none'}"
    )
    for name, text in other[:20]:
        print(f"\nFAILED {name}\n{text[:1500]}")
    return 1 if other else 0


if __name__ == "__main__":
    sys.exit(main())
