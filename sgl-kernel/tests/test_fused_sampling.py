"""The fused seeded op top_k_top_p_min_p_sampling_from_probs (issue 9; docs/sampling.md).

Runs on the CPU (the float64 reference) and, with a GPU, on the GPU kernel. Frequency
tests repeat one row many times with distinct seeds (so every draw is independent, which
also tests that rows do not share random numbers) and compare the counts with the exact
filtered distribution by chi-square at a false-alarm rate of sgl_kernel.testing.ALPHA
(1e-4) per case, with fixed seeds. Kept sets are checked exactly: against a plain-Python
transcription of the definition, and no draw may fall outside them.
"""

import math

import numpy as np
import pytest
import torch

import sgl_kernel
from sgl_kernel import sampling_reference as ref
from sgl_kernel.testing import (
    ALPHA,
    GPU,
    assert_matches_distribution,
    fused_distribution,
    fused_reference_tokens,
    is_gpu,
    synchronize,
)

OP = "top_k_top_p_min_p_sampling_from_probs"
SCHEMA = (
    f"sgl_kernel::{OP}(Tensor probs, Tensor(a!) output, Tensor top_k, Tensor top_p, "
    "Tensor min_p, Tensor seeds, Tensor positions) -> ()"
)
INF, NAN = float("inf"), float("nan")
NO_K = 2**31 - 1  # k >= vocab: no top-k cut
FLT_MIN = torch.finfo(torch.float32).tiny
# Seeds spaced by a large odd constant, so neighbouring draws share no structure.
SEED_STEP = 0x9E3779B97F4A7C15 - 2**64

sample = sgl_kernel.top_k_top_p_min_p_sampling_from_probs


def draws(device: str, vocab: int) -> int:
    """Independent draws per frequency case: many on a GPU, CI-sized on the CPU (large
    vocabularies cost V per draw; their cases keep a small support)."""
    if is_gpu(device):
        return 200_000 if vocab <= 10_000 else 20_000
    return 4000 if vocab <= 10_000 else 600


def peaked(vocab: int, seed: int = 0, rows: int = 1) -> torch.Tensor:
    """LLM-like rows (softmax of 3 * normal logits), CPU float32."""
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(rows, vocab, generator=g) * 3, dim=-1)


def seeds_for(n: int, base: int = 1, device="cpu") -> torch.Tensor:
    i = torch.arange(n, dtype=torch.int64, device=device)
    return i * SEED_STEP + base  # wraps like the op's own int64 arithmetic


def draw_repeated(row, n, top_k, top_p, min_p, device, base=1):
    """n draws of one row, each with its own seed (position 7), through the wrapper, in
    chunks of bounded size (the op needs the rows materialised)."""
    chunk = max(1, (2**27 if is_gpu(device) else 2**22) // row.numel())
    row = row.to(device).view(1, -1)
    out, all_seeds = [], seeds_for(n, base, device)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        seeds = all_seeds[start : start + m]
        positions = torch.full((m,), 7, dtype=torch.int64, device=device)
        ids = sample(row.expand(m, -1), top_k, top_p, min_p, seeds=seeds, positions=positions)
        out.append(ids.cpu())
    return torch.cat(out)


# --------------------------------------------------------------------------- the seeded draw


def _documented_exponential(seed: int, position: int, token: int) -> float:
    """docs/sampling.md's hash in Python integers (mod 2^64, logical shifts), then
    -log((2m + 1) / 2^54) to 40 digits."""
    import decimal

    mask64, mask32 = (1 << 64) - 1, (1 << 32) - 1

    def mix32(x: int) -> int:
        x = ((x ^ (x >> 16)) * ref._MIX32_1) & mask32
        x = ((x ^ (x >> 15)) * ref._MIX32_2) & mask32
        return x ^ (x >> 16)

    key = (seed * ref._MIX_SEED + position * ref._MIX_POS) & mask64
    key = ((key ^ (key >> 30)) * ref._MIX_1) & mask64
    key = ((key ^ (key >> 27)) * ref._MIX_2) & mask64
    key ^= key >> 31
    a, b = key & mask32, key >> 32
    high = mix32(((a + token * ref._MIX_TOKEN) & mask32) ^ b)
    low = mix32((high + b) & mask32)
    m = (high << 21) | (low >> 11)
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        u = decimal.Decimal(2 * m + 1) / decimal.Decimal(1 << 54)
        return float(-u.ln())


def test_seeded_exponential_is_the_documented_hash():
    """The reference's draws, against the documented arithmetic at 40 digits: relative
    error at float64 rounding, also for u near 1 (small E, the likeliest winners), where
    float64 cannot hold u itself."""
    seeds = torch.tensor([0, 1, -1, 2**63 - 1, -(2**63), 123456789], dtype=torch.int64)
    positions = torch.tensor([0, 5, 2**40, -3, 7, 2**62], dtype=torch.int64)
    got = ref.seeded_exponential(seeds, positions, 300)
    for r in range(seeds.numel()):
        for t in range(300):
            want = _documented_exponential(int(seeds[r]), int(positions[r]), t)
            assert got[r, t].item() == pytest.approx(want, rel=4e-16, abs=0), (r, t)
    assert bool(torch.isfinite(got).all()) and bool((got > 0).all())


# --------------------------------------------------------------------------- the definition


def spec_keep_row(row, k, p, min_p) -> set:
    """The definition, transcribed token by token in plain Python (exact sums)."""
    f32 = np.float32
    row = [float(f32(x)) for x in row]  # the float32 values the op sees
    w = [x if x > 0 else 0.0 for x in row]  # NaN > 0 is False
    total = math.fsum(w)
    if any(x == INF for x in row) or not (FLT_MIN <= total <= float(torch.finfo().max)):
        return set()
    order = sorted(range(len(w)), key=lambda i: (-w[i], i))
    threshold = float(f32(max(w)) * f32(min_p))  # the float32 product
    kept, above = set(), []
    for r, i in enumerate(order):
        cut = r >= k or (math.fsum(above) > p * total and not p >= 1) or w[i] < threshold
        if w[i] > 0 and not cut:
            kept.add(i)
        above.append(w[i])
    return kept


def keep_sets(keep: torch.Tensor) -> list:
    return [set(torch.nonzero(r).view(-1).tolist()) for r in keep]


EDGE_K = [-3, 0, 1, 2, 5, 17, 40, NO_K]
EDGE_P = [NAN, -0.5, 0.0, 1e-9, 0.3, 0.5, 0.9, 0.999, 1.0, 2.0]
EDGE_MIN_P = [NAN, -1.0, 0.0, 0.01, 0.1, 0.5, 1.0, 1.5]


def hostile_rows(vocab: int, rows: int, seed: int) -> torch.Tensor:
    """Rows with exact ties (rounded logits), NaN and negative entries, unnormalised."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.round(torch.randn(rows, vocab, generator=g) * 8) / 4
    x = torch.softmax(logits, dim=-1) * torch.rand(rows, 1, generator=g) * 3
    x[torch.rand(rows, vocab, generator=g) < 0.05] = NAN
    x[torch.rand(rows, vocab, generator=g) < 0.05] *= -1
    return x


@pytest.mark.parametrize("vocab", [1, 5, 40], ids=lambda v: f"v{v}")
@pytest.mark.parametrize("seed", range(3), ids=lambda s: f"seed{s}")
def test_reference_kept_set_is_the_definition(vocab, seed):
    """ref.fused_keep (vectorised, float64 sums) == the token-by-token definition (exact
    sums) on hostile rows with every edge value of every parameter."""
    g = torch.Generator().manual_seed(100 + seed)
    rows = 300
    x = hostile_rows(vocab, rows, seed)
    pick = lambda values: torch.tensor(values)[torch.randint(len(values), (rows,), generator=g)]  # noqa: E731
    k = pick(EDGE_K).to(torch.int32)
    p, m = pick(EDGE_P).float(), pick(EDGE_MIN_P).float()
    got = keep_sets(ref.fused_keep(x, k, p, m))
    for r in range(rows):
        want = spec_keep_row(x[r].tolist(), int(k[r]), float(p[r]), float(m[r]))
        assert got[r] == want, f"row {r}: k={int(k[r])} p={float(p[r])} min_p={float(m[r])}"


HAND_CASES = [
    # (id, row, k, p, min_p, kept)
    ("top-k-2", [0.1, 0.2, 0.3, 0.4], 2, 1.0, 0.0, {2, 3}),
    ("uniform-ties-cut-by-id", [0.25] * 4, 3, 1.0, 0.0, {0, 1, 2}),
    ("top-p-inside-a-tie-group", [0.4, 0.15, 0.15, 0.15, 0.15], NO_K, 0.6, 0.0, {0, 1, 2}),
    ("top-p-relative-to-the-row-total", [0.2, 0.1, 0.1], NO_K, 0.6, 0.0, {0, 1}),
    ("top-p-boundary-is-kept", [0.5, 0.25, 0.25], NO_K, 0.5, 0.0, {0, 1}),
    ("min-p-of-the-largest", [0.5, 0.3, 0.15, 0.05], NO_K, 1.0, 0.3, {0, 1, 2}),
    ("all-three", [0.05, 0.5, 0.3, 0.15], 3, 0.7, 0.4, {1, 2}),
    ("nan-and-negatives-weigh-zero", [NAN, -1.0, 0.5, 0.5], NO_K, 1.0, 0.0, {2, 3}),
    ("k-zero-keeps-nothing", [0.5, 0.5], 0, 1.0, 0.0, set()),
    ("negative-p-keeps-nothing", [0.5, 0.5], NO_K, -0.1, 0.0, set()),
    ("nan-p-cuts-nothing", [0.5, 0.3, 0.2], NO_K, NAN, 0.0, {0, 1, 2}),
    ("nan-min-p-cuts-nothing", [0.5, 0.3, 0.2], NO_K, 1.0, NAN, {0, 1, 2}),
    ("min-p-above-one-keeps-nothing", [0.5, 0.3, 0.2], NO_K, 1.0, 1.5, set()),
    ("plus-inf-is-invalid", [INF, 0.5], NO_K, 1.0, 0.0, set()),
    ("all-zero-is-invalid", [0.0, 0.0, -0.0], NO_K, 1.0, 0.0, set()),
    ("subnormal-only-is-invalid", [1e-40, 1e-40], NO_K, 1.0, 0.0, set()),
    ("total-past-float32-is-invalid", [3e38, 3e38], NO_K, 1.0, 0.0, set()),
]


@pytest.mark.parametrize(
    "row,k,p,min_p,kept", [c[1:] for c in HAND_CASES], ids=[c[0] for c in HAND_CASES]
)
def test_hand_computed_kept_sets(row, k, p, min_p, kept, device):
    """The reference, the Python definition and the op's draws agree with the hand answer."""
    x = torch.tensor([row])
    keep = ref.fused_keep(
        x, torch.tensor([k], dtype=torch.int32), torch.tensor([p]), torch.tensor([min_p])
    )
    assert keep_sets(keep) == [kept]
    assert spec_keep_row(row, k, p, min_p) == kept
    ids = draw_repeated(x[0], 400, k, p, min_p, device)
    assert set(ids.tolist()) <= (kept or {0}), "a draw outside the kept set"
    if len(kept) > 1:
        assert set(ids.tolist()) == kept, "400 draws never hit some kept token"


# --------------------------------------------------------------------------- frequencies


def _uniform(v):
    return torch.full((v,), 1.0 / v)


FREQ_CASES = [
    # (id, row builder, top_k, top_p, min_p)
    ("none-v7", lambda: peaked(7, 1)[0], NO_K, 1.0, 0.0),
    ("vocab-1", lambda: torch.tensor([0.3]), NO_K, 1.0, 0.0),
    ("top-k-v101", lambda: peaked(101, 2)[0], 10, 1.0, 0.0),
    ("top-p-v101", lambda: peaked(101, 3)[0], NO_K, 0.7, 0.0),
    ("min-p-v101", lambda: peaked(101, 4)[0], NO_K, 1.0, 0.05),
    ("all-three-v101", lambda: peaked(101, 5)[0], 20, 0.8, 0.02),
    ("uniform-ties-k-below-v", lambda: _uniform(64), 10, 1.0, 0.0),
    ("top-p-cuts-inside-ties", lambda: torch.tensor([0.4] + [0.06] * 10), NO_K, 0.6, 0.0),
    ("unnormalised-with-nan-v33", lambda: hostile_rows(33, 1, 7)[0], NO_K, 0.9, 0.0),
    ("top-k-top-p-v128256", lambda: peaked(128256, 6)[0], 50, 0.9, 0.0),
    # More tokens at or above the kernel's floor than its 1024-entry shared buffer holds:
    # the search, the tie pass and the draw read the row instead.
    ("ties-past-the-buffer-k-v4096", lambda: _uniform(4096), 10, 1.0, 0.0),
    ("ties-past-the-buffer-p-v4096", lambda: _uniform(4096), NO_K, 0.002, 0.0),
    ("k-above-the-thread-count-v8192", lambda: peaked(8192, 9)[0], 2500, 1.0, 0.0),
]


@pytest.mark.parametrize(
    "make,top_k,top_p,min_p", [c[1:] for c in FREQ_CASES], ids=[c[0] for c in FREQ_CASES]
)
def test_frequencies_match_the_filtered_distribution(make, top_k, top_p, min_p, device):
    row = make()
    n = draws(device, row.numel())
    ids = draw_repeated(row, n, top_k, top_p, min_p, device)
    want = fused_distribution(row.view(1, -1), top_k, top_p, min_p)[0]
    assert_matches_distribution(ids, want, f"{n} draws, one seed each")


def test_positions_alone_give_independent_draws(device):
    """One seed, advancing positions: the draws follow the distribution too."""
    row = peaked(50, 8)[0]
    n = draws(device, 50)
    probs = row.view(1, -1).expand(n, -1).to(device)
    seeds = torch.full((n,), 12345, dtype=torch.int64, device=device)
    positions = torch.arange(n, dtype=torch.int64, device=device)
    ids = sample(probs, 30, 0.95, 0.01, seeds=seeds, positions=positions)
    assert_matches_distribution(
        ids, fused_distribution(row.view(1, -1), 30, 0.95, 0.01)[0], "positions"
    )


def test_unseeded_calls_follow_the_distribution_and_the_generator(device):
    row = peaked(20, 9)[0]
    n = draws(device, 20)
    probs = row.view(1, -1).expand(n, -1).to(device)
    g = torch.Generator(device=device).manual_seed(5)
    ids = sample(probs, 8, 0.9, 0.0, generator=g)
    assert_matches_distribution(
        ids, fused_distribution(row.view(1, -1), 8, 0.9, 0.0)[0], "unseeded"
    )
    g.manual_seed(5)
    assert torch.equal(sample(probs, 8, 0.9, 0.0, generator=g), ids), "same generator state"


# --------------------------------------------------------------------------- determinism


def _batch(device, rows=64, vocab=300, seed=11):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(rows, vocab, generator=g), dim=-1)  # flat: many tokens
    params = dict(
        top_k=torch.randint(1, 200, (rows,), generator=g, dtype=torch.int32),
        top_p=torch.rand(rows, generator=g) * 0.5 + 0.5,
        min_p=torch.rand(rows, generator=g) * 0.1,
        seeds=torch.randint(-(2**63), 2**63 - 1, (rows,), generator=g),
        positions=torch.randint(0, 4096, (rows,), generator=g),
    )
    return probs.to(device), {n: t.to(device) for n, t in params.items()}


def test_same_seeds_and_positions_give_the_same_tokens(device):
    probs, a = _batch(device)
    first = sample(probs, **a)
    assert torch.equal(sample(probs.clone(), **a), first)
    moved = dict(a, positions=a["positions"] + 1)
    assert not torch.equal(sample(probs, **moved), first), "new positions drew the same 64 tokens"
    reseeded = dict(a, seeds=a["seeds"] + 1)
    assert not torch.equal(sample(probs, **reseeded), first), "new seeds drew the same 64 tokens"


def test_a_rows_token_ignores_its_batch_slot_and_batch_mates(device):
    probs, a = _batch(device)
    first = sample(probs, **a)
    perm = torch.randperm(probs.size(0), generator=torch.Generator().manual_seed(3)).to(device)
    permuted = sample(probs[perm], **{n: t[perm] for n, t in a.items()})
    assert torch.equal(permuted, first[perm]), "moving rows to other slots changed their tokens"
    other, b = _batch(device, seed=12)
    mixed = torch.cat([probs[:10], other[10:]])
    mixed_args = {n: torch.cat([a[n][:10], b[n][10:]]) for n in a}
    assert torch.equal(sample(mixed, **mixed_args)[:10], first[:10]), "batch-mates changed tokens"
    alone = sample(probs[5:6], **{n: t[5:6] for n, t in a.items()})
    assert torch.equal(alone, first[5:6])


def test_a_rows_token_ignores_its_memory_alignment(device):
    """Vocab 7: row r of a batch starts 16-byte aligned only when r % 4 == 0, so the
    kernel reads groups 0 and 1-3 of each four rows through different loads. The row's
    top-p limit sits 2^-25 under the weight of token 0, so a total off by one float32
    rounding (a per-thread float32 sum) would cut token 4 in some slots and not others.
    Every four rows share a seed: all four must draw the same token, the reference's."""
    d = 2.0**-24
    row = torch.tensor([1.0, d, d, d, 1.0, 0.0, 0.0])
    groups = 100
    probs = row.expand(4 * groups, 7).contiguous().to(device)
    seeds = (torch.arange(groups, dtype=torch.int64) * SEED_STEP).repeat_interleave(4)
    args = dict(top_k=7, top_p=0.5 - 2.0**-25, min_p=0.0)
    ids = sample(probs, **args, seeds=seeds.to(device)).cpu().view(groups, 4)
    assert bool((ids == ids[:, :1]).all()), "the same row drew different tokens by its slot"
    want = fused_reference_tokens(row.expand(groups, 7), seeds=seeds[::4], positions=0, **args)
    assert torch.equal(ids[:, 0].long(), want.long())
    assert set(ids[:, 0].tolist()) == {0, 4}, "token 4 is kept (exact total)"


def test_a_seeded_row_is_the_reference_draw(device):
    """On the CPU this is the reference itself; on a GPU see the agreement tests."""
    probs, a = _batch(device, rows=8)
    want = fused_reference_tokens(probs, **a)
    got = sample(probs, **a).cpu().long()
    if not is_gpu(device):
        assert torch.equal(got, want)
    else:
        assert int((got == want).sum()) >= 7  # 8 random rows: near-ties are rare


# --------------------------------------------------------------------------- GPU vs CPU


@pytest.mark.skipif(GPU is None, reason="needs a GPU")
@pytest.mark.parametrize("vocab", [7, 1000, 128256], ids=lambda v: f"v{v}")
def test_gpu_agrees_with_the_reference_on_random_rows(vocab):
    """>= 99.5% of random rows (hostile: ties, NaN, negatives; random parameters) give the
    reference's token; the rest are float near-ties of the keys (float32 on the GPU)."""
    rows = 2000 if vocab < 10_000 else 200
    g = torch.Generator().manual_seed(vocab)
    x = hostile_rows(vocab, rows, vocab)
    pick = lambda values: torch.tensor(values)[torch.randint(len(values), (rows,), generator=g)]  # noqa: E731
    args = dict(
        top_k=pick(EDGE_K).to(torch.int32),
        top_p=pick(EDGE_P).float(),
        min_p=pick(EDGE_MIN_P).float(),
        seeds=torch.randint(-(2**63), 2**63 - 1, (rows,), generator=g),
        positions=torch.randint(-(2**63), 2**63 - 1, (rows,), generator=g),
    )
    want = torch.cat(
        [
            fused_reference_tokens(x[i : i + 50], **{n: t[i : i + 50] for n, t in args.items()})
            for i in range(0, rows, 50)
        ]
    )
    got = sample(x.to(GPU), **{n: t.to(GPU) for n, t in args.items()}).cpu().long()
    agree = float((got == want).double().mean())
    assert agree >= 0.995, f"GPU and reference agree on {agree:.4f} of {rows} rows"
    keep = ref.fused_keep(x, args["top_k"], args["top_p"], args["min_p"])
    inside = keep[torch.arange(rows), got] | (~keep.any(-1) & (got == 0))
    assert bool(inside.all()), "a GPU token outside its row's kept set"


@pytest.mark.skipif(GPU is None, reason="needs a GPU")
def test_gpu_agrees_exactly_on_near_tie_free_rows():
    """Few distinct, well-separated values and few tokens: the kept sets are exact on both
    sides and a float32 key near-tie (|key difference| ~ 1e-6) has probability ~1e-6 per
    pair of tokens, so 300 rows of 8 tokens disagree with probability ~1e-2 only."""
    rows = 300
    g = torch.Generator().manual_seed(77)
    values = torch.tensor([1.0, 2.0, 4.0, 8.0])
    x = values[torch.randint(4, (rows, 8), generator=g)]
    args = dict(
        top_k=torch.randint(1, 9, (rows,), generator=g, dtype=torch.int32),
        top_p=torch.tensor([0.3, 0.6, 0.95, 1.0])[torch.randint(4, (rows,), generator=g)],
        min_p=torch.tensor([0.0, 0.2, 0.3])[torch.randint(3, (rows,), generator=g)],
        seeds=torch.randint(-(2**63), 2**63 - 1, (rows,), generator=g),
        positions=torch.randint(0, 2**40, (rows,), generator=g),
    )
    want = fused_reference_tokens(x, **args)
    got = sample(x.to(GPU), **{n: t.to(GPU) for n, t in args.items()}).cpu().long()
    assert torch.equal(got, want), f"rows differ: {torch.nonzero(got != want).view(-1).tolist()}"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
def test_cuda_graph_replays_draw_at_the_advanced_positions():
    probs, a = _batch("cuda", rows=32)
    seeds, positions = a["seeds"].clone(), a["positions"].clone()
    sample(probs, 40, 0.9, 0.01, seeds=seeds, positions=positions)  # warm up outside capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = sample(probs, 40, 0.9, 0.01, seeds=seeds, positions=positions)
    graph.replay()
    first = out.clone()
    assert torch.equal(first, sample(probs, 40, 0.9, 0.01, seeds=seeds, positions=positions))
    positions.add_(1)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, sample(probs, 40, 0.9, 0.01, seeds=seeds, positions=positions))
    assert not torch.equal(out, first), "a replay at new positions drew the same 32 tokens"


# --------------------------------------------------------------------------- edge values


def test_invalid_rows_and_empty_kept_sets_sample_token_zero(device):
    rows = torch.tensor(
        [
            [NAN] * 4,
            [0.1, INF, 0.3, 0.2],
            [0.0] * 4,
            [-1.0, -2.0, 0.0, -0.5],
            [1e-40, 2e-41, 0.0, 1e-39],
            [3e38, 3e38, 1.0, 1.0],
            [0.1, 0.2, 0.3, 0.4],  # valid, but k = 0
            [0.1, 0.2, 0.3, 0.4],  # valid, but p < 0
            [0.1, 0.2, 0.3, 0.4],  # valid, but min_p > 1
        ]
    )
    k = torch.tensor([5] * 6 + [0, 5, 5], dtype=torch.int32)
    p = torch.tensor([1.0] * 7 + [-1.0, 1.0])
    m = torch.tensor([0.0] * 8 + [1.5])
    seeds, pos = seeds_for(9), torch.arange(9)
    got = sample(
        rows.to(device), k.to(device), p.to(device), m.to(device), seeds.to(device), pos.to(device)
    )
    assert got.tolist() == [0] * 9
    assert fused_reference_tokens(rows, k, p, m, seeds, pos).tolist() == [0] * 9


EDGE_PARAMS = [
    ("k-negative", -5, 1.0, 0.0, "zero"),
    ("k-at-vocab", 50, 1.0, 0.0, "all"),
    ("k-past-int32", 2**40, 1.0, 0.0, "all"),
    ("p-above-one", NO_K, 3.0, 0.0, "all"),
    ("p-nan", NO_K, NAN, 0.0, "all"),
    ("min-p-nan", NO_K, 1.0, NAN, "all"),
    ("min-p-negative", NO_K, 1.0, -2.0, "all"),
    ("min-p-above-one", NO_K, 1.0, 1.01, "zero"),
]


@pytest.mark.parametrize(
    "k,p,m,kept", [c[1:] for c in EDGE_PARAMS], ids=[c[0] for c in EDGE_PARAMS]
)
def test_edge_parameter_values(k, p, m, kept, device):
    row = peaked(50, 13)[0]
    ids = draw_repeated(row, 2000 if is_gpu(device) else 500, k, p, m, device)
    if kept == "zero":
        assert ids.tolist() == [0] * ids.numel()
    else:
        want = fused_distribution(row.view(1, -1), NO_K, 1.0, 0.0)[0]
        assert_matches_distribution(ids, want, "no cut")


@pytest.mark.parametrize(
    "value", [-(2**63), -1, 2**63 - 1], ids=["int64-min", "minus-one", "int64-max"]
)
def test_extreme_seeds_and_positions(value, device):
    probs = peaked(30, 14, rows=4).to(device)
    full = torch.full((4,), value, dtype=torch.int64, device=device)
    for seeds, positions in ((full, full), (full, full * 0), (full * 0 + 3, full)):
        got = sample(probs, 10, 0.9, 0.0, seeds=seeds, positions=positions).cpu().long()
        want = fused_reference_tokens(probs, 10, 0.9, 0.0, seeds, positions)
        if not is_gpu(device):
            assert torch.equal(got, want)
        keep = ref.fused_keep(probs.cpu(), *(torch.full((4,), v) for v in (10, 0.9, 0.0)))
        assert bool(keep[torch.arange(4), got].all())


def test_the_largest_vocabulary_is_accepted():
    """2^20 - 1 tokens pass the checks (on meta tensors: no memory, no sampling)."""
    args = _raw_args("meta", rows=2)
    args["probs"] = torch.zeros(2, ref.FUSED_MAX_VOCAB, device="meta")
    getattr(torch.ops.sgl_kernel, OP).default(*args.values())


def test_empty_batch(device):
    got = sample(torch.zeros(0, 9, device=device), 3, 0.9, 0.1)
    assert got.shape == (0,) and got.dtype == torch.int32
    out = torch.empty(0, dtype=torch.int32, device=device)
    z = lambda dtype: torch.zeros(0, dtype=dtype, device=device)  # noqa: E731
    getattr(torch.ops.sgl_kernel, OP).default(
        torch.zeros(0, 9, device=device), out, z(torch.int32), z(torch.float32),
        z(torch.float32), z(torch.int64), z(torch.int64),
    )  # fmt: skip


def test_wrapper_converts_dtypes_and_strides(device):
    probs, a = _batch(device, rows=6, vocab=40)
    want = sample(probs, **a)
    as_other = dict(
        top_k=a["top_k"].long(), top_p=a["top_p"].double(), min_p=a["min_p"].half().float(),
        seeds=a["seeds"], positions=a["positions"].int(),
    )  # fmt: skip
    as_other["min_p"] = a["min_p"].double()
    assert torch.equal(sample(probs.double(), **as_other), want)
    strided = torch.zeros(40, 6, device=device).T
    strided.copy_(probs)
    assert not strided.is_contiguous()
    assert torch.equal(sample(strided, **a), want)
    assert sample(probs.bfloat16(), **a).shape == (6,)


# --------------------------------------------------------------------------- bad input


def _good(device, rows=3, vocab=10):
    return dict(
        probs=torch.rand(rows, vocab, device=device),
        top_k=5, top_p=0.9, min_p=0.1,
        seeds=torch.arange(rows, device=device), positions=torch.arange(rows, device=device),
    )  # fmt: skip


WRAPPER_ERRORS = [
    (
        "top_k-2-D",
        dict(top_k=torch.ones(1, 3, dtype=torch.int32)),
        r"top_k must be a number or a 1-D tensor",
    ),
    ("top_k-fraction", dict(top_k=2.5), r"top_k must be an integer or \+-inf, got 2.5"),
    ("top_k-nan", dict(top_k=NAN), r"top_k must be an integer"),
    (
        "top_p-wrong-length",
        dict(top_p=torch.ones(2)),
        r"top_p must have one value per row of probs \(3 rows\), got 2",
    ),
    ("min_p-string", dict(min_p="0.1"), r"min_p must be a number or a 1-D tensor.*got str"),
    ("seeds-float", dict(seeds=torch.zeros(3)), r"seeds must be an integer tensor, got float32"),
    ("seeds-list", dict(seeds=[1, 2, 3]), r"seeds must be a 1-D integer tensor, got list"),
    (
        "positions-wrong-length",
        dict(positions=torch.zeros(4, dtype=torch.int64)),
        r"positions must have one value per row",
    ),
    (
        "positions-0-D",
        dict(positions=torch.tensor(3)),
        r"positions must be a number or a 1-D tensor",
    ),
]


@pytest.mark.parametrize(
    "change,message", [c[1:] for c in WRAPPER_ERRORS], ids=[c[0] for c in WRAPPER_ERRORS]
)
def test_wrapper_rejects_malformed_arguments(change, message, device):
    args = _good(device)
    args.update(change)
    with pytest.raises(ValueError, match=message):
        sample(**args)


def test_wrapper_rejects_bad_probs():
    with pytest.raises(TypeError, match="probs must be float16, bfloat16, float32 or float64"):
        sample(torch.ones(2, 3, dtype=torch.int64), 1, 1.0, 0.0)
    with pytest.raises(RuntimeError, match=r"probs must be 2-D \(batch, vocab\)"):
        sample(torch.ones(3), 1, 1.0, 0.0)


def _raw_args(device, rows=3, vocab=10):
    return dict(
        probs=torch.rand(rows, vocab, device=device),
        output=torch.empty(rows, dtype=torch.int32, device=device),
        top_k=torch.full((rows,), 5, dtype=torch.int32, device=device),
        top_p=torch.full((rows,), 0.9, device=device),
        min_p=torch.zeros(rows, device=device),
        seeds=torch.arange(rows, device=device),
        positions=torch.arange(rows, device=device),
    )


RAW_ERRORS = [
    ("probs-float64", "probs", lambda t: t.double(), r"probs must be float32, got float64"),
    ("probs-1-D", "probs", lambda t: t[0], r"probs must be 2-D \(batch, vocab\), got shape \[10\]"),
    ("probs-vocab-0", "probs", lambda t: t[:, :0], r"probs must have vocab size >= 1"),
    (
        "probs-vocab-2^20",
        "probs",
        lambda t: torch.zeros(3, 2**20, device=t.device),
        r"probs must have a vocab size below 2\^20 \(the kernel sums masses exactly in 32 bits\), "
        r"got shape \[3, 1048576\]",
    ),
    ("probs-strided", "probs", lambda t: t[:, ::2], r"probs must be contiguous"),
    ("output-int64", "output", lambda t: t.long(), r"output must be int32, got int64"),
    ("output-short", "output", lambda t: t[:2], r"output must be 1-D of length 3, got shape \[2\]"),
    ("top_k-int64", "top_k", lambda t: t.long(), r"top_k must be int32, got int64"),
    ("top_p-float64", "top_p", lambda t: t.double(), r"top_p must be float32, got float64"),
    (
        "min_p-2-D",
        "min_p",
        lambda t: t.view(1, 3),
        r"min_p must be 1-D of length 3, got shape \[1, 3\]",
    ),
    ("seeds-int32", "seeds", lambda t: t.int(), r"seeds must be int64, got int32"),
    (
        "positions-strided",
        "positions",
        lambda t: torch.arange(6, device=t.device)[::2],
        r"positions must be contiguous",
    ),
    (
        "seeds-on-meta",
        "seeds",
        lambda t: t.to("meta"),
        r"seeds must be on the same device as the probabilities",
    ),
]


@pytest.mark.parametrize(
    "name,change,message", [c[1:] for c in RAW_ERRORS], ids=[c[0] for c in RAW_ERRORS]
)
def test_raw_op_rejects_malformed_arguments(name, change, message, device):
    """The same message from the GPU binding, the CPU reference and the fake (meta)."""
    for on in (device, "meta"):
        if on == "meta" and "same device" in message:
            continue  # every argument on meta is a valid placement
        args = _raw_args(on)
        args[name] = change(args[name])
        with pytest.raises(RuntimeError, match=f"{OP}: {message}"):
            getattr(torch.ops.sgl_kernel, OP).default(*args.values())
            synchronize(on)


# --------------------------------------------------------------------------- registration


def test_registered_schema():
    assert str(getattr(torch.ops.sgl_kernel, OP).default._schema) == SCHEMA


def test_exported_with_a_reference_and_a_validator():
    assert OP in sgl_kernel.__all__ and OP in ref.OPS and OP in ref.VALIDATORS


@pytest.mark.parametrize("rows", [0, 3], ids=lambda r: f"batch{r}")
def test_opcheck(rows, device):
    args = tuple(_raw_args(device, rows=rows).values())
    # Deterministic given its seeds, so the aot_dispatch comparison of two runs applies.
    torch.library.opcheck(getattr(torch.ops.sgl_kernel, OP).default, args)


def test_alpha_is_the_documented_false_alarm_rate():
    assert ALPHA == 1e-4
