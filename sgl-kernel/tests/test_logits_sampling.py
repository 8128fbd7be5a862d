"""The from-logits op top_k_top_p_min_p_sampling_from_logits (issue 16; docs/sampling.md).

Runs on the CPU (the reference) and, with a GPU, on the four-launch kernel. Frequency
tests repeat one row with distinct seeds and compare the counts with the exact filtered
distribution of w = exp(s - max s) by chi-square at sgl_kernel.testing.ALPHA (1e-4) per
case, fixed seeds. Greedy answers, kept sets, split and layout invariance are exact.
"""

import pytest
import torch
from test_fused_sampling import EDGE_K, EDGE_MIN_P, EDGE_P, seeds_for

import sgl_kernel
from sgl_kernel import sampling_reference as ref
from sgl_kernel.testing import (
    ALPHA,
    GPU,
    assert_matches_distribution,
    fused_distribution,
    is_gpu,
)

OP = "top_k_top_p_min_p_sampling_from_logits"
SCHEMA = (
    f"sgl_kernel::{OP}(Tensor logits, Tensor(a!) output, Tensor temperature, Tensor? top_k, "
    "Tensor? top_p, Tensor? min_p, Tensor seeds, Tensor? positions) -> ()"
)
INF, NAN = float("inf"), float("nan")
NO_K = 2**31 - 1
sample = sgl_kernel.top_k_top_p_min_p_sampling_from_logits


def logits_rows(vocab: int, rows: int = 1, scale: float = 3.0, seed: int = 0) -> torch.Tensor:
    """CPU float32 normal logits: scale 3 is peaked, 0.5 flat."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, vocab, generator=g) * scale


def weights_of(x: torch.Tensor, temperature: float) -> torch.Tensor:
    s = ref.scaled_logits(x, torch.full((x.size(0),), temperature))
    return ref.logit_weights(s)


def draw_repeated(row, n, temperature, top_k, top_p, min_p, device):
    """n draws of one row, each with its own seed, in chunks (the op reads rows in place,
    so an expanded row costs no memory)."""
    row = row.to(device).view(1, -1)
    chunk = max(1, (2**27 if is_gpu(device) else 2**21) // row.numel())
    out, seeds = [], seeds_for(n, 5, device)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        ids = sample(
            row.expand(m, -1), temperature, top_k, top_p, min_p, seeds=seeds[start : start + m]
        )
        out.append(ids.cpu())
    return torch.cat(out)


# --------------------------------------------------------------------------- greedy


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_greedy_rows_take_the_first_maximum(dtype, device):
    x = torch.tensor(
        [
            [1.0, 3.0, 3.0, 2.0],  # tie: the lower id
            [NAN, INF, -INF, INF],  # +inf is the largest; the first one
            [NAN, NAN, -INF, NAN],  # nothing above -inf: every entry ties, token 0
            [-5.0, -INF, -4.0, NAN],
            [-1.0, -0.0, 0.0, -2.0],  # -0 == +0: the first of them
        ]
    ).to(dtype)
    want = torch.tensor([1, 1, 0, 2, 1], dtype=torch.int32)
    for temperature, top_k in ((0.0, NO_K), (-1.0, 50), (NAN, 50), (1.0, 1), (0.5, 1)):
        got = sample(x.to(device), temperature, top_k, 1.0, 0.0)
        assert torch.equal(got.cpu(), want), f"T={temperature} k={top_k}: {got.tolist()}"


def test_top_k_one_with_a_cutting_filter_keeps_nothing(device):
    x = logits_rows(50, 3).to(device)
    assert torch.equal(sample(x, 1.0, 1, -0.5, 0.0).cpu(), torch.zeros(3, dtype=torch.int32))
    assert torch.equal(sample(x, 1.0, 1, 1.0, 1.5).cpu(), torch.zeros(3, dtype=torch.int32))


# --------------------------------------------------------------------------- distributions

SETTINGS = [  # (temperature, top_k, top_p, min_p)
    (1.0, NO_K, 1.0, 0.0),  # keep all
    (0.7, NO_K, 0.9, 0.0),
    (1.3, 50, 1.0, 0.0),
    (1.0, NO_K, 1.0, 0.05),
    (0.8, 40, 0.9, 0.0),
    (1.2, 100, 0.8, 0.02),
]


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "T{}-k{}-p{}-m{}".format(*s))
@pytest.mark.parametrize("scale", [3.0, 0.5], ids=["peaked", "flat"])
def test_frequencies_match_the_filtered_softmax(setting, scale, device):
    temperature, k, p, m = setting
    vocab = 2000 if is_gpu(device) else 300
    x = logits_rows(vocab, scale=scale, seed=vocab)
    n = 100_000 if is_gpu(device) else 3000
    got = draw_repeated(x, n, temperature, k, p, m, device)
    dist = fused_distribution(weights_of(x, temperature), k, p, m)[0]
    assert_matches_distribution(got, dist, f"{setting} {scale}", ALPHA)


@pytest.mark.skipif(GPU is None, reason="large vocabularies: GPU only")
@pytest.mark.parametrize("vocab", [32000, 128256, 151936], ids=lambda v: f"v{v}")
@pytest.mark.parametrize("setting", SETTINGS[1:4], ids=lambda s: "k{1}-p{2}-m{3}".format(*s))
def test_gpu_frequencies_at_llm_vocabularies(vocab, setting):
    temperature, k, p, m = setting
    x = logits_rows(vocab, scale=3.0, seed=vocab) + torch.arange(vocab) * 1e-5  # no ties
    got = draw_repeated(x, 20_000, temperature, k, p, m, GPU)
    dist = fused_distribution(weights_of(x, temperature), k, p, m)[0]
    assert_matches_distribution(got, dist, f"v{vocab} {setting}", ALPHA)


def test_non_finite_logits(device):
    """+inf tokens share the mass equally; NaN and -inf are never drawn while any other
    value is present; a row of NaN / -inf only is uniform."""
    n = 20_000 if is_gpu(device) else 3000
    row = torch.tensor([1.0, INF, NAN, -INF, INF, 2.0, INF])
    got = draw_repeated(row, n, 1.0, NO_K, 1.0, 0.0, device)
    want = torch.tensor([0, 1, 0, 0, 1, 0, 1], dtype=torch.float64)
    assert_matches_distribution(got, want, "+inf tokens")
    got = draw_repeated(torch.tensor([NAN, -INF, NAN, NAN]), n, 0.9, NO_K, 1.0, 0.0, device)
    assert_matches_distribution(got, torch.ones(4, dtype=torch.float64), "NaN / -inf row")
    got = draw_repeated(torch.tensor([NAN, 0.5, -INF, 0.5]), n, 1.0, 1000, 0.95, 0.01, device)
    assert_matches_distribution(got, torch.tensor([0, 1.0, 0, 1.0]), "NaN and -inf cut")


@pytest.mark.parametrize("k, p, m, kept", [
    (0, 1.0, 0.0, None), (-3, 0.9, 0.0, None), (NO_K, -0.1, 0.0, None), (NO_K, 1.0, 1.5, None),
    (NO_K, NAN, NAN, {0, 1, 2, 3}), (2, NAN, 0.0, {2, 3}), (NO_K, 0.0, 0.0, {3}),
])  # fmt: skip
def test_edge_parameter_values(k, p, m, kept, device):
    x = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]])).expand(400, -1).to(device)
    got = set(sample(x, 1.0, k, p, m, seeds=seeds_for(400, 3, device)).tolist())
    assert got == ({0} if kept is None else kept), f"k={k} p={p} min_p={m}: {sorted(got)}"


def test_infinite_temperature_is_uniform_over_finite_logits(device):
    got = draw_repeated(
        torch.tensor([5.0, -INF, 1.0, NAN, -2.0]), 3000, INF, NO_K, 1.0, 0.0, device
    )
    assert_matches_distribution(got, torch.tensor([1.0, 0, 1.0, 0, 1.0]), "T = inf")


# --------------------------------------------------------------------------- invariance


def _mixed_batch(rows: int, vocab: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, vocab, generator=g) * 2
    x[::7, 3 % vocab] = INF
    x[::5, 10:20] = NAN
    pick = lambda values: torch.tensor(values)[torch.randint(len(values), (rows,), generator=g)]  # noqa: E731
    args = dict(
        temperature=pick([0.0, 0.5, 1.0, 1.7]).float(),
        top_k=pick([1, 5, 50, NO_K]).to(torch.int32),
        top_p=pick([0.5, 0.9, 1.0]).float(),
        min_p=pick([0.0, 0.05, 0.3]).float(),
        seeds=torch.randint(-(2**63), 2**63 - 1, (rows,), generator=g),
        positions=torch.randint(0, 2**40, (rows,), generator=g),
    )
    return x, args


def _on(device, args):
    return {n: t.to(device) for n, t in args.items()}


@pytest.mark.parametrize("vocab", [4097, 40000], ids=lambda v: f"v{v}")
def test_a_rows_token_ignores_batch_split_strides_and_dtype_width(vocab, device):
    """One row alone (split over many blocks on a GPU), inside a large batch (one block),
    in a strided, misaligned or transposed view, all give the same token."""
    x, args = _mixed_batch(8, vocab, vocab)
    alone = torch.cat(
        [
            sample(
                x[i : i + 1].to(device), **_on(device, {n: t[i : i + 1] for n, t in args.items()})
            )
            for i in range(8)
        ]
    )
    big = 300 if is_gpu(device) else 16
    filler, fargs = _mixed_batch(big, vocab, 1)
    batch_x = torch.cat([filler, x]).to(device)
    batch_args = _on(device, {n: torch.cat([fargs[n], args[n]]) for n in args})
    in_batch = sample(batch_x, **batch_args)[big:]
    assert torch.equal(alone.cpu(), in_batch.cpu()), "batch size (the split) changed tokens"
    padded = torch.full((8, vocab + 3), NAN)
    padded[:, 1 : vocab + 1] = x
    views = {
        "misaligned": padded.to(device)[:, 1 : vocab + 1],
        "transposed": x.t().contiguous().to(device).t(),
        "column stride 2": torch.stack([x, x], dim=-1).to(device)[..., 0],
    }
    for name, view in views.items():
        got = sample(view, **_on(device, args))
        assert torch.equal(got.cpu(), in_batch.cpu()), f"{name} view changed tokens"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_logits_are_read_exactly(dtype, device):
    x, args = _mixed_batch(16, 3000, 4)
    x = x.to(dtype)
    got = sample(x.to(device), **_on(device, args))
    want = sample(x.float().to(device), **_on(device, args))
    assert torch.equal(got.cpu(), want.cpu())


@pytest.mark.skipif(GPU is None, reason="needs a GPU")
@pytest.mark.parametrize(
    "vocab", [1, 2, 17, 4096, 4111, 32000, 128256, 151936], ids=lambda v: f"v{v}"
)
def test_gpu_agrees_with_the_reference(vocab):
    """>= 99% of hostile random rows give the reference's token (the rest: exp rounding
    at a filter boundary or float32 key near-ties), and every GPU token is kept by the
    reference's definition or sits at such a boundary (>= 99.5%)."""
    rows = 400 if vocab < 10_000 else 64
    x, args = _mixed_batch(rows, vocab, vocab)
    pick = torch.Generator().manual_seed(1)
    args["top_k"] = torch.tensor(EDGE_K)[torch.randint(len(EDGE_K), (rows,), generator=pick)].int()
    args["top_p"] = torch.tensor(EDGE_P)[
        torch.randint(len(EDGE_P), (rows,), generator=pick)
    ].float()
    args["min_p"] = torch.tensor(EDGE_MIN_P)[
        torch.randint(len(EDGE_MIN_P), (rows,), generator=pick)
    ].float()
    want = torch.empty(rows, dtype=torch.int32)
    ref.top_k_top_p_min_p_sampling_from_logits(x, want, **args)
    got = sample(x.to(GPU), **_on(GPU, args)).cpu()
    agree = float((got == want).double().mean())
    assert agree >= 0.99, f"GPU and reference agree on {agree:.4f} of {rows} rows"


def _seeds_and_positions(rows: int, g: torch.Generator) -> dict:
    return dict(
        seeds=torch.randint(-(2**63), 2**63 - 1, (rows,), generator=g),
        positions=torch.randint(0, 2**40, (rows,), generator=g),
    )


def _assert_gpu_gives_the_references_tokens(x: torch.Tensor, args: dict) -> None:
    want = torch.empty(x.size(0), dtype=torch.int32)
    ref.top_k_top_p_min_p_sampling_from_logits(x, want, **args)
    got = sample(x.to(GPU), **_on(GPU, args)).cpu()
    assert torch.equal(got, want), f"rows differ: {torch.nonzero(got != want).view(-1).tolist()}"


@pytest.mark.skipif(GPU is None, reason="needs a GPU")
def test_gpu_agrees_exactly_on_near_tie_free_rows():
    rows = 300
    g = torch.Generator().manual_seed(77)
    values = torch.tensor([0.0, -0.7, -1.4, -2.8])
    x = values[torch.randint(4, (rows, 8), generator=g)]
    args = dict(
        temperature=torch.ones(rows),
        top_k=torch.randint(1, 9, (rows,), generator=g, dtype=torch.int32),
        top_p=torch.tensor([0.3, 0.6, 0.95, 1.0])[torch.randint(4, (rows,), generator=g)],
        min_p=torch.tensor([0.0, 0.1, 0.35])[torch.randint(3, (rows,), generator=g)],
        **_seeds_and_positions(rows, g),
    )
    _assert_gpu_gives_the_references_tokens(x, args)


@pytest.mark.skipif(GPU is None, reason="needs a GPU")
@pytest.mark.parametrize("rows", [1, 200], ids=["split", "one-block"])
def test_gpu_top_k_cut_inside_a_run_of_equal_weights_agrees_exactly(rows):
    """Top-k rows whose boundary falls inside a run of equal weights (30 tokens at the
    top, a run of 700 at the next value, the rest far below; k cuts either run): the
    kernel's candidates of launch 3, its radix levels and tie rule, against the
    reference's definition. The kept sets match exactly (a run keeps its lowest ids), and
    so does every token (no float near-ties: the levels are far apart). Also with min-p
    above and below the run, and at batch 1 (the collection split over blocks) and 200
    (one block per row)."""
    vocab = 4111
    g = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, vocab, generator=g) - 12.0
    for r in range(rows):
        ids = torch.randperm(vocab, generator=g)
        x[r, ids[:30]] = 0.0
        x[r, ids[30:730]] = -0.5
    k = torch.randint(31, 730, (rows,), generator=g, dtype=torch.int32)
    k[::4] = torch.randint(1, 31, (len(k[::4]),), generator=g, dtype=torch.int32)
    args = dict(
        temperature=torch.ones(rows),
        top_k=k,
        top_p=torch.ones(rows),
        min_p=torch.tensor([0.0, 0.5, 0.7])[torch.randint(3, (rows,), generator=g)],
        **_seeds_and_positions(rows, g),
    )
    _assert_gpu_gives_the_references_tokens(x, args)


@pytest.mark.skipif(GPU is None, reason="needs a GPU")
@pytest.mark.parametrize("rows", [6, 200], ids=["split", "one-block"])
def test_gpu_early_list_and_its_fallbacks_agree_exactly(rows):
    """Rows built to send the kernel down each way of finding the kept tokens, against
    the reference's tokens (levels far apart: no float near-ties):
    - top-k with the top 60 tokens inside ids 0..3999: split over 10 blocks (batch 6),
      one block's guessed floor is too high for k near 60, and the row falls back to
      launch 3's read; in one block per row (batch 200) the early list holds them;
    - 1500 equal top weights, k = 50: the early list overflows, and the tie rule keeps
      the run's 50 lowest ids;
    - top-p 0.9 over 4000 tokens at 0 and 2000 at -0.7: the boundary bin (the 2000) fits
      launch 3's list, the 4000 above it do not; at batch 200 the blocks draw above the
      bin while they read and the last block adds the bin's kept tokens (no launch 4),
      at batch 6 launch 4 draws;
    and each of them with min-p above or below the boundary."""
    vocab = 40000
    g = torch.Generator().manual_seed(1000 + rows)
    x = torch.randn(rows, vocab, generator=g) - 12.0
    k = torch.full((rows,), NO_K, dtype=torch.int32)
    p = torch.ones(rows)
    for r in range(rows):
        kind = r % 3
        if kind == 0:
            ids = torch.randperm(4000, generator=g)[:60]
            x[r, ids] = torch.tensor([0.0, -0.7, -1.4])[torch.randint(3, (60,), generator=g)]
            k[r] = int(torch.randint(1, 61, (1,), generator=g))
        elif kind == 1:
            x[r, torch.randperm(vocab, generator=g)[:1500]] = 0.0
            k[r] = 50
        else:
            ids = torch.randperm(vocab, generator=g)
            x[r, ids[:4000]] = 0.0
            x[r, ids[4000:6000]] = -0.7
            p[r] = 0.9
    args = dict(
        temperature=torch.ones(rows),
        top_k=k,
        top_p=p,
        min_p=torch.tensor([0.0, 0.3, 0.6])[torch.randint(3, (rows,), generator=g)],
        **_seeds_and_positions(rows, g),
    )
    _assert_gpu_gives_the_references_tokens(x, args)


@pytest.mark.skipif(GPU is None, reason="needs a GPU")
@pytest.mark.parametrize(
    "rows, vocab", [(1, 40000), (6, 40000), (200, 40000), (1100, 2000)], ids=lambda v: str(v)
)
def test_gpu_one_pass_draw_agrees_with_the_two_pass_draw(rows, vocab):
    """In a batch of rows that keep every token, launch 1 draws each by rho = s - log(E),
    which needs no M, and keeps the winner only when its runner-up is far enough below;
    else launch 2 draws it by (s - M) - log(E). With min_p = 1e-30 (a weight that small can
    never win) every row takes launch 2's draw: every token must agree. The rows include
    ones the first draw cannot decide: several +inf logits (equal rho), logits near 3e38
    (rho rounds to ties), every logit -inf or NaN, large scales where rho's rounding is
    coarse. At 1100 rows, one top-k row in the second window of 1024 rows sends that
    window's rows to launch 2 in both calls, while the first window's rows draw in launch 1."""
    g = torch.Generator().manual_seed(2000 + rows)
    x = torch.randn(rows, vocab, generator=g) * 3.0
    for r in range(rows):
        kind = r % 6
        ids = torch.randperm(vocab, generator=g)[:8]
        if kind == 1:
            x[r, ids] = INF
        elif kind == 2:
            x[r] = 3.0e38 + x[r] * 1.0e31
        elif kind == 3:
            x[r] = -INF
            x[r, ids] = NAN
        elif kind == 4:
            x[r] *= 1.0e4
        elif kind == 5:
            x[r] = x[r] * 1.0e-3 + 1.0e5
    k = torch.full((rows,), NO_K, dtype=torch.int32)
    if rows > 1024:
        k[1050] = 5  # a plain row (1050 % 6 == 0): min_p 1e-30 changes nothing of its top 5
    args = dict(temperature=torch.ones(rows), top_k=k, top_p=torch.ones(rows))
    args.update(_seeds_and_positions(rows, g))
    xg = x.to(GPU)
    for draw in range(4):  # other positions: other draws
        a = _on(GPU, dict(args, positions=args["positions"] + draw))
        one_pass, two_pass = (sample(xg, min_p=m, **a) for m in (0.0, 1.0e-30))
        assert torch.equal(one_pass.cpu(), two_pass.cpu()), (
            f"draw {draw}: rows {torch.nonzero(one_pass != two_pass).view(-1).tolist()}"
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
def test_cuda_graph_replays_draw_at_the_advanced_positions():
    x, args = _mixed_batch(32, 5000, 9)
    a = _on("cuda", args)
    x = x.cuda()

    def call():
        return sample(
            x,
            a["temperature"],
            a["top_k"],
            a["top_p"],
            a["min_p"],
            seeds=a["seeds"],
            positions=a["positions"],
        )

    call()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = call()
    graph.replay()
    first = out.clone()
    assert torch.equal(first, call())
    a["positions"].add_(1)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, call())
    assert not torch.equal(out, first), "a replay at new positions drew the same 32 tokens"


# --------------------------------------------------------------------------- the wrapper


def test_wrapper_paths(device):
    x, args = _mixed_batch(6, 500, 2)
    a = _on(device, args)
    xd = x.to(device)
    per_row = sample(xd, a["temperature"], a["top_k"], a["top_p"], a["min_p"], seeds=a["seeds"])
    zeros = torch.zeros(6, dtype=torch.int64, device=device)
    assert torch.equal(
        per_row,
        sample(
            xd,
            a["temperature"],
            a["top_k"],
            a["top_p"],
            a["min_p"],
            seeds=a["seeds"],
            positions=zeros,
        ),
    )
    scalars = sample(xd, 0.8, 20, 0.9, 0.01, seeds=a["seeds"])
    rows = lambda v, dt: torch.full((6,), v, dtype=dt, device=device)  # noqa: E731
    assert torch.equal(
        scalars,
        sample(
            xd,
            rows(0.8, torch.float64),
            rows(20, torch.int64),
            rows(0.9, torch.float64),
            rows(0.01, torch.float32),
            seeds=a["seeds"],
        ),
    )
    assert torch.equal(scalars, sample(xd.double(), 0.8, 20, 0.9, 0.01, seeds=a["seeds"]))
    gen = lambda: torch.Generator(device=device).manual_seed(3)  # noqa: E731
    assert torch.equal(
        sample(xd, 1.0, NO_K, 1.0, 0.0, generator=gen()),
        sample(xd, 1.0, NO_K, 1.0, 0.0, generator=gen()),
    )
    assert sample(xd[:0], 1.0, 5, 0.9, 0.0).shape == (0,)


def test_absent_filters_cut_nothing(device, monkeypatch):
    """A filter given as None, or as a number that cuts nothing, reaches the op as None
    (on a GPU: without top-k and top-p, two launches that write every token, not four)
    and gives the tokens of per-row values that cut nothing, row for row: greedy rows
    (temperature 0) included, beside min-p and top-k rows."""
    rows, vocab = 40, 5000
    x, args = _mixed_batch(rows, vocab, 8)
    a = _on(device, args)
    xd = x.to(device)
    t, seeds, positions = a["temperature"], a["seeds"], a["positions"]
    off = dict(
        top_k=torch.full((rows,), vocab, dtype=torch.int32, device=device),
        top_p=torch.ones(rows, device=device),
        min_p=torch.zeros(rows, device=device),
    )
    given = []
    real = sgl_kernel.musa._ops

    class Spy:  # records which filters reach the op as None
        class top_k_top_p_min_p_sampling_from_logits:
            @staticmethod
            def default(*op_args):
                given.append(tuple(v is None for v in op_args[3:6]))
                return getattr(real, OP).default(*op_args)

    monkeypatch.setattr(sgl_kernel.musa, "_ops", Spy)
    for kept in ({}, {"min_p": a["min_p"]}, {"top_k": a["top_k"]}, {"top_p": a["top_p"]}):
        want = sample(xd, t, **dict(off, **kept), seeds=seeds, positions=positions)
        absent = dict.fromkeys(off, None) | kept
        got = sample(xd, t, **absent, seeds=seeds, positions=positions)
        assert torch.equal(got.cpu(), want.cpu()), f"filters {sorted(kept)}: tokens differ"
        assert given[-1] == tuple(name not in kept for name in off)
        given.clear()
    scalars = sample(xd, t, vocab, 1.0, 0.0, seeds=seeds, positions=positions)
    assert given == [(True, True, True)]
    assert torch.equal(scalars, sample(xd, t, seeds=seeds, positions=positions))
    assert torch.equal(scalars, sample(xd, t, INF, NAN, NAN, seeds=seeds, positions=positions))
    assert torch.equal(scalars, sample(xd, t, 10**400, 2.0, -INF, seeds=seeds, positions=positions))
    assert given[1:] == [(True, True, True)] * 3
    assert torch.equal(scalars.cpu(), sample(xd, t, **off, seeds=seeds, positions=positions).cpu())
    given.clear()
    sample(xd, t, vocab - 1, 0.99, 1e-9, seeds=seeds)  # numbers that cut: arrays
    assert given == [(False, False, False)]


@pytest.mark.parametrize("bad, error, message", [
    (dict(logits=torch.zeros(2, 5, dtype=torch.int32)), TypeError, "logits must be float16"),
    (dict(logits=torch.zeros(10)), RuntimeError, "logits must be 2-D"),
    (dict(temperature=torch.ones(3)), ValueError, "temperature must have one value per row of logits"),
    (dict(top_k=torch.ones(2, 1)), ValueError, "top_k must be a number or a 1-D tensor"),
    (dict(seeds=torch.ones(2)), ValueError, "seeds must be an integer tensor"),
    (dict(positions=[1, 2]), ValueError, "positions must be a 1-D integer tensor"),
    (dict(logits=torch.zeros(2, 1 << 20)), RuntimeError, "vocab size in \\[1, 2\\^20\\)"),
])  # fmt: skip
def test_wrapper_rejects_bad_arguments(bad, error, message, device):
    call = dict(logits=torch.zeros(2, 5), temperature=1.0, top_k=3, top_p=0.9, min_p=0.0)
    call.update(bad)
    call = {n: v.to(device) if isinstance(v, torch.Tensor) else v for n, v in call.items()}
    with pytest.raises(error, match=message):
        sample(**call)


def _raw(device, rows=3, vocab=10):
    return dict(
        logits=torch.randn(rows, vocab, device=device),
        output=torch.empty(rows, dtype=torch.int32, device=device),
        temperature=torch.ones(rows, device=device),
        top_k=torch.full((rows,), 5, dtype=torch.int32, device=device),
        top_p=torch.full((rows,), 0.9, device=device),
        min_p=torch.zeros(rows, device=device),
        seeds=torch.arange(rows, device=device),
        positions=torch.arange(rows, device=device),
    )


@pytest.mark.parametrize("name, change, message", [
    ("logits", lambda t: t.double(), "logits must be float32, float16 or bfloat16, got float64"),
    ("logits", lambda t: t[0], "logits must be 2-D"),
    ("output", lambda t: t.long(), "output must be int32, got int64"),
    ("temperature", lambda t: t[:2], "temperature must be 1-D of length 3"),
    ("top_k", lambda t: t.float(), "top_k must be int32, got float32"),
    ("top_p", lambda t: t.double(), "top_p must be float32, got float64"),
    ("min_p", lambda t: t.view(3, 1), "min_p must be 1-D of length 3"),
    ("seeds", lambda t: t.int(), "seeds must be int64, got int32"),
    ("positions", lambda t: t[::2], "positions must be 1-D of length 3"),
])  # fmt: skip
def test_raw_op_rejects_malformed_arguments(name, change, message, device):
    args = _raw(device)
    args[name] = change(args[name])
    with pytest.raises(RuntimeError, match=message):
        getattr(torch.ops.sgl_kernel, OP).default(*args.values())


def test_registered_schema():
    assert str(getattr(torch.ops.sgl_kernel, OP).default._schema) == SCHEMA


def test_exported_with_a_reference_and_a_validator():
    assert OP in sgl_kernel.__all__ and OP in ref.OPS and OP in ref.VALIDATORS


@pytest.mark.parametrize("rows", [0, 3], ids=lambda r: f"batch{r}")
@pytest.mark.parametrize("filters", ["given", "absent"])
def test_opcheck(rows, filters, device):
    args = _raw(device, rows=rows)
    if filters == "absent":
        args.update(top_k=None, top_p=None, min_p=None)
    torch.library.opcheck(getattr(torch.ops.sgl_kernel, OP).default, tuple(args.values()))
