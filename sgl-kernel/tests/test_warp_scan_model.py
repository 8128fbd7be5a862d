"""A model of FlashInfer's deterministic block scan under 32- and 128-lane warps.

`DeterministicInclusiveSum` (sampling.cuh, used when deterministic=True, the default)
is read from the staged headers with and without patch 0005; its five warp shuffles
(kind, source-lane expression, width) come from the header text, and the code around
them is checked fragment by fragment against what the model executes. The shuffles
follow CUDA's documented rules, generalised to a hardware warp of W lanes (MUSA mp_22
has W = 128; its __shfl*_sync take the same arguments):

* a warp is W consecutive threads; `width` (default warpSize = W) splits it into groups;
* __shfl_sync(mask, v, src, width): v of lane (src mod width) of the caller's group
  (src is an int: 0xffffffff is -1, i.e. width - 1);
* __shfl_up_sync(mask, v, d, width): v of lane - d, own v when that leaves the group;
* __shfl_xor_sync(mask, v, m, width): v of lane ^ m, own v when that is a later group;
* reading a lane that is not executing the call is undefined: the model raises.

The mask argument is taken as "all lanes that execute the call" on both platforms;
torch_musa's own warp helpers pass 0xffffffff with width = warpSize on 128-lane warps.
"""

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

KERNEL_DIR = Path(__file__).resolve().parents[1]
REPO = KERNEL_DIR.parent


# The porting lint, which also loads setup_musa.py and splits call arguments for us.
_spec = importlib.util.spec_from_file_location(
    "musa_port_lint", KERNEL_DIR / "tools" / "musa_port_lint.py"
)
lint = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = lint  # dataclasses look their module up
_spec.loader.exec_module(lint)
load_setup_musa, split_args = lint.load_setup_musa, lint.split_args


@pytest.fixture(scope="module")
def headers(tmp_path_factory):
    """sampling.cuh staged with every patch, and with every patch but 0005."""
    sm = load_setup_musa()
    patches = sm._patches()
    without = [p for p in patches if not p.name.startswith("0005-")]
    assert len(without) == len(patches) - 1, "patch 0005 is missing"
    root = tmp_path_factory.mktemp("scan")
    return {
        name: (
            sm.stage_flashinfer_into(root / name, chosen) / "flashinfer" / "sampling.cuh"
        ).read_text()
        for name, chosen in (("patched", patches), ("unpatched", without))
    }


# ----------------------------------------------------------------------------- header text


def scan_function(text: str) -> str:
    start = text.index("__device__ __forceinline__ void DeterministicInclusiveSum(")
    end = text.index("template <", start)
    body = re.sub(r"//[^\n]*", "", text[start:end])
    return re.sub(r"\s+", " ", body)


def shuffles(function: str) -> list[dict]:
    """Every __shfl*_sync call in order: kind, mask, lane argument, width (None = default)."""
    calls = []
    for match in re.finditer(r"__shfl(_up|_down|_xor|)_sync\s*\(", function):
        depth, index = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(function[index], 0)
            index += 1
        args = split_args(function[match.end() : index - 1])
        calls.append(
            {
                "kind": {"": "idx", "_up": "up", "_down": "down", "_xor": "xor"}[match.group(1)],
                "mask": args[0],
                "lane": args[2],
                "width": args[3] if len(args) == 4 else None,
            }
        )
    return calls


# What the model executes between the shuffles, as it appears in the header.
FRAGMENTS = [
    ("for (uint32_t offset = 1; offset < 32; offset *= 2) {", 2),
    ("for (uint32_t offset = 16; offset >= 1; offset /= 2) {", 2),
    ("if ((threadIdx.x + 1) % (offset * 2) == 0) { thread_exclusive_prefix_sum += tmp; }", 1),
    ("if (threadIdx.x % 32 == 31) { thread_exclusive_prefix_sum = 0; }", 1),
    (
        "if ((threadIdx.x + 1) % (offset * 2) == 0) { thread_exclusive_prefix_sum = tmp + thread_exclusive_prefix_sum; }",
        1,
    ),
    ("if ((threadIdx.x + 1) % (offset * 2) == offset) { thread_exclusive_prefix_sum = tmp; }", 1),
    ("smem_prefix_sum[threadIdx.x / 32] = warp_sum; __syncthreads(); if (threadIdx.x < 32) {", 1),
    ("(threadIdx.x < BLOCK_THREADS / 32) ? smem_prefix_sum[threadIdx.x] : 0;", 1),
    ("if ((threadIdx.x + 1) % (offset * 2) == 0) { warp_exclusive_prefix_sum += tmp; }", 1),
    ("if (threadIdx.x % 32 == 31) { warp_exclusive_prefix_sum = 0; }", 1),
    (
        "if ((threadIdx.x + 1) % (offset * 2) == 0) { warp_exclusive_prefix_sum = tmp + warp_exclusive_prefix_sum; }",
        1,
    ),
    ("if ((threadIdx.x + 1) % (offset * 2) == offset) { warp_exclusive_prefix_sum = tmp; }", 1),
    (
        "if (threadIdx.x < BLOCK_THREADS / 32) { smem_prefix_sum[threadIdx.x] = warp_exclusive_prefix_sum; }",
        1,
    ),
    (
        "out_data[i] = smem_prefix_sum[threadIdx.x / 32] + thread_exclusive_prefix_sum + thread_data[i];",
        1,
    ),
]


@pytest.mark.parametrize("variant", ["patched", "unpatched"])
def test_the_model_executes_the_code_in_the_header(headers, variant):
    function = scan_function(headers[variant])
    for fragment, count in FRAGMENTS:
        assert function.count(fragment) == count, fragment
    assert [c["kind"] for c in shuffles(function)] == ["up", "idx", "xor", "up", "xor"]
    assert {c["mask"] for c in shuffles(function)} == {"0xffffffff"}


def test_patch_0005_gives_every_shuffle_width_32(headers):
    unpatched = shuffles(scan_function(headers["unpatched"]))
    patched = shuffles(scan_function(headers["patched"]))
    assert [c["width"] for c in unpatched] == [None] * 5
    assert unpatched[1]["lane"] == "threadIdx.x | 0xffffffff"
    assert [c["width"] for c in patched] == ["32"] * 5
    assert patched[1]["lane"] == "31"
    assert [c["lane"] for i, c in enumerate(patched) if i != 1] == ["offset"] * 4


# ----------------------------------------------------------------------------- shuffle rules


class UndefinedRead(AssertionError):
    """An active lane read a lane that does not execute the shuffle."""


class Warps:
    """Shuffles over a block of `threads` threads in warps of `warp` lanes."""

    def __init__(self, threads: int, warp: int):
        self.tid = np.arange(threads)
        self.warp = warp
        self.lane = self.tid % warp
        self.base = self.tid - self.lane

    def width(self, text):
        return self.warp if text in (None, "warpSize") else int(text)

    def _gather(self, values, active, source_lane):
        source = self.base + source_lane
        bad = active & ~active[np.minimum(source, len(active) - 1)] & (source != self.tid)
        if bad.any():
            raise UndefinedRead(f"lanes {np.flatnonzero(bad)[:4]} read inactive lanes")
        return np.where(active, values[source], values)

    def idx(self, values, active, src, width):
        segment = self.lane // width * width
        return self._gather(
            values, active, segment + (np.asarray(src, dtype=np.int64) & (width - 1))
        )

    def up(self, values, active, delta, width):
        inside = self.lane % width >= delta
        return self._gather(values, active, np.where(inside, self.lane - delta, self.lane))

    def xor(self, values, active, mask, width):
        target = self.lane ^ mask
        later = (target // width > self.lane // width) | (target >= self.warp)
        return self._gather(values, active, np.where(later, self.lane, target))


def lane_argument(expression: str, tid):
    """Evaluate a source-lane expression such as `threadIdx.x | 0xffffffff` per thread."""
    python = expression.replace("threadIdx.x", "tid")
    assert re.fullmatch(r"[\w\s|&^+\-*/%()x]+", python), expression
    value = eval(python, {"__builtins__": {}}, {"tid": tid.astype(np.int64)})  # noqa: S307
    return np.asarray(value, dtype=np.int64) & 0xFFFFFFFF  # an unsigned 32-bit lane operand


@pytest.mark.parametrize(
    "src, width, expected_lanes",
    [
        (31, 32, [31] * 4),
        (0xFFFFFFFF, 32, [31] * 4),
        (0xFFFFFFFF, 16, [15, 15, 31, 31]),
        (3, 8, [3, 3, 19, 19]),
    ],
    ids=["lane31-w32", "all-ones-w32", "all-ones-w16", "lane3-w8"],
)
def test_shfl_idx_rule(src, width, expected_lanes):
    warps = Warps(32, 32)
    out = warps.idx(np.arange(32.0), np.ones(32, bool), src, width)
    assert out[[0, 5, 16, 20]].tolist() == expected_lanes


def test_shfl_up_and_xor_rules():
    warps = Warps(128, 128)
    active = np.ones(128, bool)
    values = np.arange(128.0)
    up = warps.up(values, active, 2, 32)
    assert up[[0, 1, 2, 32, 33, 34]].tolist() == [0, 1, 0, 32, 33, 32]  # no crossing into a group
    xor = warps.xor(values, active, 16, 32)
    assert xor[[0, 16, 31, 96]].tolist() == [16, 0, 15, 112]
    assert warps.xor(values, active, 32, 32)[[0, 32]].tolist() == [0, 0]  # later group: own value
    with pytest.raises(UndefinedRead):  # lanes 0-15 read lane 127, which is not in the call
        warps.idx(values, np.arange(128) < 16, 127, 128)
    with pytest.raises(UndefinedRead):  # lane 16 reads lane 15, which is not in the call
        warps.up(values, (np.arange(128) >= 16) & (np.arange(128) < 32), 1, 128)


# ----------------------------------------------------------------------------- the scan


def deterministic_inclusive_sum(in_data, calls, warp, dtype=np.float64):
    """DeterministicInclusiveSum for one block: in_data [BLOCK_THREADS, VEC_SIZE]."""
    threads = in_data.shape[0]
    warps = Warps(threads, warp)
    tid = warps.tid
    everyone = np.ones(threads, bool)
    up1, broadcast, xor1, up2, xor2 = calls
    thread_data = np.cumsum(in_data.astype(dtype), axis=1, dtype=dtype)
    x = thread_data[:, -1].copy()

    def shuffle(call, values, active, offset=None):
        width = warps.width(call["width"])
        if call["kind"] == "idx":
            return warps.idx(values, active, lane_argument(call["lane"], tid), width)
        assert call["lane"] == "offset"
        return getattr(warps, call["kind"])(values, active, offset, width)

    offset = 1
    while offset < 32:
        tmp = shuffle(up1, x, everyone, offset)
        x = np.where((tid + 1) % (offset * 2) == 0, x + tmp, x)
        offset *= 2
    warp_sum = shuffle(broadcast, x, everyone)
    x = np.where(tid % 32 == 31, dtype(0), x)
    offset = 16
    while offset >= 1:
        tmp = shuffle(xor1, x, everyone, offset)
        x = np.where((tid + 1) % (offset * 2) == 0, tmp + x, x)
        x = np.where((tid + 1) % (offset * 2) == offset, tmp, x)
        offset //= 2
    smem = np.zeros(threads // 32, dtype)
    for group in range(threads // 32):  # every thread of a group stores: they must agree
        stored = warp_sum[tid // 32 == group]
        assert (stored == stored[0]).all(), "threads of one group store different totals"
        smem[group] = stored[0]
    first = tid < 32
    y = np.where(first & (tid < threads // 32), smem[np.minimum(tid, threads // 32 - 1)], dtype(0))
    offset = 1
    while offset < 32:
        tmp = shuffle(up2, y, first, offset)
        y = np.where(first & ((tid + 1) % (offset * 2) == 0), y + tmp, y)
        offset *= 2
    y = np.where(first & (tid % 32 == 31), dtype(0), y)
    offset = 16
    while offset >= 1:
        tmp = shuffle(xor2, y, first, offset)
        y = np.where(first & ((tid + 1) % (offset * 2) == 0), tmp + y, y)
        y = np.where(first & ((tid + 1) % (offset * 2) == offset), tmp, y)
        offset //= 2
    smem[: threads // 32] = y[: threads // 32]
    return smem[tid // 32][:, None] + x[:, None] + thread_data


def block_input(threads, vec, seed):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(threads * vec, 0.3)).reshape(threads, vec) * 100.0


CASES = [
    (v, w, t, vec)
    for v in ("unpatched", "patched")
    for w in (32, 128)
    for t in (512, 1024)
    for vec in (1, 4)
]


@pytest.mark.parametrize(
    "variant, warp, threads, vec",
    CASES,
    ids=[f"{v}-warp{w}-block{t}-vec{vec}" for v, w, t, vec in CASES],
)
def test_scan_against_the_exact_prefix_sum(headers, variant, warp, threads, vec):
    calls = shuffles(scan_function(headers[variant]))
    data = block_input(threads, vec, seed=threads * 10 + vec)
    got = deterministic_inclusive_sum(data, calls, warp)
    exact = np.cumsum(data.ravel()).reshape(threads, vec)
    error = np.abs(got - exact).max()
    if variant == "unpatched" and warp == 128:
        # groups 0-2 of each 128-lane warp add group 3's total: the CDF is off by whole
        # percent of the mass (the row sums to 100), and no longer monotone.
        assert error > 1.0
        assert (np.diff(got.ravel()) < 0).any() or error > 5.0
    else:
        assert error < 1e-9, error


@pytest.mark.parametrize("threads", [512, 1024], ids=["block512", "block1024"])
def test_on_32_lane_warps_the_patch_changes_no_bit(headers, threads):
    data = block_input(threads, 4, seed=7).astype(np.float32)
    before = deterministic_inclusive_sum(
        data, shuffles(scan_function(headers["unpatched"])), 32, np.float32
    )
    after = deterministic_inclusive_sum(
        data, shuffles(scan_function(headers["patched"])), 32, np.float32
    )
    assert before.dtype == np.float32 and np.array_equal(
        before.view(np.int32), after.view(np.int32)
    )


def test_on_128_lane_warps_the_unpatched_scan_moves_samples(headers):
    """Where an inverse-CDF draw lands: the unpatched 128-lane scan picks other tokens."""
    data = block_input(1024, 4, seed=11)
    exact = np.cumsum(data.ravel())
    wrong = deterministic_inclusive_sum(
        data, shuffles(scan_function(headers["unpatched"])), 128
    ).ravel()
    right = deterministic_inclusive_sum(
        data, shuffles(scan_function(headers["patched"])), 128
    ).ravel()
    draws = np.random.default_rng(3).uniform(0, exact[-1], 2000)
    pick = lambda cdf: np.minimum(np.searchsorted(cdf, draws, side="right"), cdf.size - 1)  # noqa: E731
    assert np.array_equal(pick(right), pick(exact))
    assert (pick(wrong) != pick(exact)).mean() > 0.1
