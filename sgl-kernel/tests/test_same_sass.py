"""tools/same_sass.py's verdicts on hand-written SASS (no compiler needed): a reordering
inside a straight-line stretch is the same code; anything else is not."""

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "same_sass", Path(__file__).resolve().parents[1] / "tools" / "same_sass.py"
)
same_sass = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(same_sass)

# (address, instruction) as cuobjdump prints them; 0x40 is a branch target.
BASE = [
    (0x00, "MOV R1, 0x1"),
    (0x10, "MOV R2, 0x2"),
    (0x20, "ISETP.GE.U32.AND P0, PT, R1, R2, PT"),
    (0x30, "@P0 BRA 0x60"),
    (0x40, "IADD3 R3, R1, R2, RZ"),
    (0x50, "MOV R4, 0x4"),
    (0x60, "EXIT"),
]


def _same(a, b) -> bool:
    return same_sass.stretches(a) == same_sass.stretches(b)


def _swap(code, i, j):
    out = list(code)
    (ai, ti), (aj, tj) = out[i], out[j]
    out[i], out[j] = (ai, tj), (aj, ti)
    return out


def test_a_reordering_within_a_stretch_is_the_same_code():
    assert _same(BASE, _swap(BASE, 0, 1))
    assert _same(BASE, _swap(BASE, 4, 5))


@pytest.mark.parametrize(
    "changed",
    [
        _swap(BASE, 2, 3),  # across the branch
        _swap(BASE, 5, 6),  # across the exit
        [(a, t.replace("0x4", "0x5")) for a, t in BASE],  # another constant
        BASE[:-2] + BASE[-1:],  # an instruction less
    ],
    ids=["across-branch", "across-exit", "constant", "dropped"],
)
def test_anything_else_is_a_change(changed):
    assert not _same(BASE, changed)


def test_a_branch_target_ends_a_stretch():
    # 0x30 is entered by the branch: moving code across it changes what the branch runs.
    code = [
        (0x00, "MOV R1, 0x1"),
        (0x10, "@P0 BRA 0x30"),
        (0x20, "MOV R2, 0x2"),
        (0x30, "MOV R3, 0x3"),
        (0x40, "EXIT"),
    ]
    assert not _same(code, _swap(code, 2, 3))
