"""SGLang's Sampler on both backends: distributions, greedy, temperature, logprobs,
seeds and backend selection. (Parameter checks: test_sampling_params.py; batch-size
checks: test_sampler_batch_checks.py; non-finite logits: test_sampler_non_finite.py;
the MUSA branch: test_musa_branch.py.)

The "flashinfer" backend runs sgl_kernel's fused seeded op: on the CPU its torch-native
reference, on a GPU the kernel. Both backends share one definition of the filters (the
sort path's: top-k, top-p and min-p cut on the original row), so distributions are
checked against sglang.test.sampler_testing.exact_distribution on both, by a chi-square test at a false-alarm rate of 1e-4 per case (sgl_kernel.testing.ALPHA).
"""

import types

import pytest
import torch

import sglang.srt.layers.sampler as sampler_module
from sgl_kernel.sampling_reference import fused_sample
from sgl_kernel.testing import assert_matches_distribution, is_gpu
from sglang.srt.layers.logits_processor import LogitsProcessorOutput
from sglang.srt.layers.sampler import Sampler, resolve_sampling_backend
from sglang.srt.sampling.sampling_batch_info import SamplingBatchInfo
from sglang.srt.sampling.sampling_params import SamplingParams
from sglang.test.sampler_testing import exact_distribution

VOCAB = 40


def make_logits(vocab=VOCAB, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(vocab, generator=g) * 2  # distinct values: no ties


def run(backend, device, logits_row, params, n, positions=None, **forward_kw):
    """Sample n requests with the same logits row and parameters in one forward."""
    logits = logits_row.to(device).repeat(n, 1)
    info = SamplingBatchInfo.from_sampling_params([params] * n, device)
    out = LogitsProcessorOutput(next_token_logits=logits)
    ids = Sampler(backend)(
        out,
        info,
        forward_kw.pop("return_logprob", False),
        [0] * n,
        [None] * n,
        positions=positions,
        **forward_kw,
    )
    return ids, out


PATHS = {
    "temperature=1": SamplingParams(temperature=1.0),
    "temperature=2": SamplingParams(temperature=2.0),
    "temperature=0.5": SamplingParams(temperature=0.5),
    "top_k=7": SamplingParams(top_k=7),
    "top_p=0.6": SamplingParams(top_p=0.6),
    "min_p=0.1": SamplingParams(min_p=0.1),
    "T=0.8 top_k=10 top_p=0.7": SamplingParams(temperature=0.8, top_k=10, top_p=0.7),
    "T=1.3 top_k=12 top_p=0.8 min_p=0.05": SamplingParams(
        temperature=1.3, top_k=12, top_p=0.8, min_p=0.05
    ),
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_token_frequencies_match_the_filtered_distribution(backend, path, device):
    n = 200_000 if is_gpu(device) else 20_000
    logits = make_logits(seed=sorted(PATHS).index(path))
    torch.manual_seed(1234)
    ids, _ = run(backend, device, logits, PATHS[path], n)
    assert ids.dtype == torch.int32 and ids.shape == (n,)
    assert_matches_distribution(ids, exact_distribution(logits, PATHS[path]), f"{backend}/{path}")


def _normalised(weights):
    return [w / sum(weights) for w in weights]


EXACT = [
    # (what, logits, params, distribution): filtered by hand from the probabilities.
    # 0.5, 0.3, 0.15, 0.05 (any shift of the log: same softmax)
    ("top_k=2", "decreasing", dict(top_k=2), [0.625, 0.375, 0, 0]),
    (
        "top_p=0.85 keeps mass-above 0.8",
        "decreasing",
        dict(top_p=0.85),
        [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0],
    ),
    ("top_p=0.79 cuts mass-above 0.8", "decreasing", dict(top_p=0.79), [0.625, 0.375, 0, 0]),
    ("top_p=0.45 keeps only the top token", "decreasing", dict(top_p=0.45), [1, 0, 0, 0]),
    ("min_p=0.5", "decreasing", dict(min_p=0.5), [0.625, 0.375, 0, 0]),
    ("min_p=0.31 cuts 0.15", "decreasing", dict(min_p=0.31), [0.625, 0.375, 0, 0]),
    (
        "min_p=0.29 keeps 0.15",
        "decreasing",
        dict(min_p=0.29),
        [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0],
    ),
    # min-p next to top-k/top-p: every filter cuts the original row, so top-p sees
    # mass-above 0.8 for token 2 (kept); renormalising after top-k (upstream's kernel
    # order) would give 0.842 and cut it.
    (
        "top_k=3 top_p=0.83 min_p=0.01",
        "decreasing",
        dict(top_k=3, top_p=0.83, min_p=0.01),
        [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0],
    ),
    # top-p after top-k on the original row: 0.5 above token 1 (kept); after a top-k
    # renormalisation it would be 0.625 (cut).
    ("top_k=2 top_p=0.6", "decreasing", dict(top_k=2, top_p=0.6), [0.625, 0.375, 0, 0]),
    # temperature 2 takes the square root of the probabilities, then top-k cuts token 3
    (
        "T=2 top_k=3",
        "decreasing",
        dict(temperature=2.0, top_k=3),
        _normalised([0.5**0.5, 0.3**0.5, 0.15**0.5, 0]),
    ),
    ("greedy", "decreasing", dict(temperature=0), [1, 0, 0, 0]),
    # Four equal probabilities (exact in float64): ties are ranked by token id.
    ("ties: top_k=2 keeps the lowest ids", "uniform", dict(top_k=2), [0.5, 0.5, 0, 0]),
    (
        "ties: top_p=0.5 keeps the token whose mass-above is exactly p",
        "uniform",
        dict(top_p=0.5),
        [1 / 3, 1 / 3, 1 / 3, 0],
    ),
    ("ties: min_p=1 keeps every tied token", "uniform", dict(min_p=1.0), [0.25] * 4),
    ("ties: greedy takes the lowest id", "uniform", dict(temperature=0), [1, 0, 0, 0]),
]
EXACT_LOGITS = {
    "decreasing": torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64).log() + 3.0,
    "uniform": torch.zeros(4, dtype=torch.float64),
}


@pytest.mark.parametrize(
    "logits, params, want", [pytest.param(x, p, w, id=what) for what, x, p, w in EXACT]
)
def test_the_exact_distribution_helper_on_hand_computed_cases(logits, params, want):
    got = exact_distribution(EXACT_LOGITS[logits], SamplingParams(**params))
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64))


def test_the_sort_path_cuts_ties_at_the_top_k_pivot_in_token_id_order(device):
    logits = torch.zeros(2000, 50, device=device)  # every token ties
    info = SamplingBatchInfo.from_sampling_params([SamplingParams(top_k=3)] * 2000, device)
    ids = Sampler("pytorch")(LogitsProcessorOutput(logits), info, False, None, None)
    assert set(ids.tolist()) == {0, 1, 2}


def test_greedy_batches_and_greedy_rows_take_the_argmax(backend, device):
    g = torch.Generator().manual_seed(3)
    logits = (torch.randn(64, 500, generator=g) * 3).to(device)
    greedy = SamplingParams(temperature=0.0)
    params = [
        greedy if i % 3 == 0 else SamplingParams(temperature=1.5, top_p=0.9) for i in range(64)
    ]
    for batch in ([greedy] * 64, params):
        info = SamplingBatchInfo.from_sampling_params(batch, device)
        ids = Sampler(backend)(
            LogitsProcessorOutput(logits.clone()), info, False, [0] * 64, [None] * 64
        )
        rows = [i for i, p in enumerate(batch) if p.is_greedy]
        assert ids[rows].tolist() == logits.argmax(-1)[rows].tolist()
    assert SamplingBatchInfo.from_sampling_params([greedy] * 2, device).is_all_greedy


def test_logprobs_are_the_temperature_scaled_log_softmax(backend, device):
    g = torch.Generator().manual_seed(4)
    logits = (torch.randn(6, 300, generator=g) * 2).to(device)
    params = [
        SamplingParams(temperature=t, top_k=k)
        for t, k in [(0.7, 20), (1.0, -1), (0.0, -1), (2.0, 5), (1.0, 50), (0.3, -1)]
    ]
    info = SamplingBatchInfo.from_sampling_params(params, device)
    out = LogitsProcessorOutput(logits.clone())
    top_nums = [0, 3, 5, 1, 0, 2]
    wanted = [None, [7, 9], None, [0], [299, 1, 2], None]
    ids = Sampler(backend)(out, info, True, top_nums, wanted)
    expect = torch.log_softmax(logits / info.temperatures, dim=-1)
    torch.testing.assert_close(
        out.next_token_logprobs, expect[torch.arange(6, device=device), ids.long()]
    )
    for row, n in enumerate(top_nums):
        vals, idx = expect[row].topk(n) if n else (torch.empty(0), torch.empty(0, dtype=torch.long))
        assert out.next_token_top_logprobs_idx[row] == idx.tolist()
        torch.testing.assert_close(
            torch.tensor(out.next_token_top_logprobs_val[row]), vals.cpu(), check_dtype=False
        )
    for row, ids_wanted in enumerate(wanted):
        if ids_wanted is None:
            assert out.next_token_token_ids_logprobs_val[row] is None
        else:
            assert out.next_token_token_ids_logprobs_idx[row] == ids_wanted
            torch.testing.assert_close(
                torch.tensor(out.next_token_token_ids_logprobs_val[row]),
                expect[row, ids_wanted].cpu(),
            )


def test_all_greedy_logprobs_are_the_log_softmax(device):
    logits = torch.randn(3, 50).to(device)
    info = SamplingBatchInfo.from_sampling_params([SamplingParams(temperature=0)] * 3, device)
    out = LogitsProcessorOutput(logits.clone())
    ids = Sampler("pytorch")(out, info, True, [2, 0, 1], [None] * 3)
    expect = torch.log_softmax(logits, -1)
    torch.testing.assert_close(
        out.next_token_logprobs, expect.gather(1, ids.long().view(-1, 1)).view(-1)
    )


# --------------------------------------------------------------------------- seeds


def test_same_seed_and_position_give_the_same_token_on_every_backend(backend, device):
    logits = make_logits(seed=9)
    params = SamplingParams(temperature=1.0, top_p=0.95, top_k=30, sampling_seed=42)
    pos = torch.arange(100, device=device)
    first, _ = run(backend, device, logits, params, 100, positions=pos)
    again, _ = run(backend, device, logits, params, 100, positions=pos)
    other_backend = "pytorch" if backend == "flashinfer" else "flashinfer"
    across, _ = run(other_backend, device, logits, params, 100, positions=pos)
    assert torch.equal(first, again) and torch.equal(first, across)
    assert len(set(first.tolist())) > 1, "different positions must give different draws"
    shifted, _ = run(backend, device, logits, params, 100, positions=pos + 1)
    assert torch.equal(shifted[:-1], first[1:])  # a token depends on (seed, position) only


def test_seeded_draws_follow_the_filtered_distribution(device):
    logits = make_logits(seed=10)
    params = SamplingParams(temperature=0.9, top_k=15, top_p=0.85)
    n = 20_000
    info = SamplingBatchInfo.from_sampling_params([params] * n, device)
    info.sampling_seed = torch.arange(n, dtype=torch.int64, device=device) * 7919 + 13
    out = LogitsProcessorOutput(logits.to(device).repeat(n, 1))
    ids = Sampler("pytorch")(
        out, info, False, [0] * n, [None] * n, positions=torch.full((n,), 5, device=device)
    )
    assert_matches_distribution(ids, exact_distribution(logits, params), "seeded")


def test_an_all_seeded_batch_draws_no_seeds(device, monkeypatch):
    """Every row seeded: the kernel path uses the rows' seeds as they are (no per-step
    draw, so no extra launches), and gives the tokens a batch with a fresh draw would."""
    logits = make_logits(seed=12)
    batch = [SamplingParams(top_p=0.9, sampling_seed=s) for s in (3, 5, 7)]
    pos = torch.tensor([4, 8, 15], dtype=torch.int64, device=device)
    out = LogitsProcessorOutput(logits.to(device).repeat(3, 1))
    info = SamplingBatchInfo.from_sampling_params(batch, device)
    want = Sampler("pytorch")(out, info, False, [0] * 3, [None] * 3, positions=pos)

    def no_draw(*args, **kwargs):
        raise AssertionError("an all-seeded batch drew seeds")

    monkeypatch.setattr(torch, "randint", no_draw)
    got = Sampler("flashinfer")(out, info, False, [0] * 3, [None] * 3, positions=pos)
    assert torch.equal(got.cpu(), want.cpu())


def test_unseeded_requests_in_a_seeded_batch_stay_random(backend, device):
    logits = make_logits(seed=11)
    batch = [SamplingParams(sampling_seed=1)] + [SamplingParams()] * 200
    draws = []
    for _ in range(2):
        info = SamplingBatchInfo.from_sampling_params(batch, device)
        out = LogitsProcessorOutput(logits.to(device).repeat(len(batch), 1))
        draws.append(
            Sampler(backend)(
                out,
                info,
                False,
                [0] * 201,
                [None] * 201,
                positions=torch.zeros(201, dtype=torch.int64, device=device),
            )
        )
    assert draws[0][0] == draws[1][0]
    assert not torch.equal(draws[0][1:], draws[1][1:])


def _spy_kernel_backend(monkeypatch):
    """Records the row count of every fused-op call; the sort path must not run."""
    calls = []
    real = sampler_module.top_k_top_p_min_p_sampling_from_logits

    def spy(logits, *args, **kwargs):
        calls.append(logits.size(0))
        return real(logits, *args, **kwargs)

    def no_sort_path(*args, **kwargs):
        raise AssertionError("the kernel backend took the sort-based path")

    monkeypatch.setattr(sampler_module, "top_k_top_p_min_p_sampling_from_logits", spy)
    monkeypatch.setattr(sampler_module, "top_k_top_p_min_p_sampling_from_probs_torch", no_sort_path)
    return calls


KERNEL_BATCHES = {
    "plain": [SamplingParams(temperature=0.7)] * 3,
    "top-k-top-p": [SamplingParams(top_k=5, top_p=0.9)] * 3,
    "min-p-beside-top-k": [SamplingParams(top_k=5), SamplingParams(min_p=0.1)] * 2,
    "one-seeded": [SamplingParams(top_p=0.9), SamplingParams(sampling_seed=3)],
    "all-seeded-with-greedy": [SamplingParams(sampling_seed=4), SamplingParams(temperature=0)],
}


@pytest.mark.parametrize("name", sorted(KERNEL_BATCHES))
def test_the_kernel_backend_samples_every_batch_in_one_fused_call(name, device, monkeypatch):
    calls = _spy_kernel_backend(monkeypatch)
    batch = KERNEL_BATCHES[name]
    n = len(batch)
    info = SamplingBatchInfo.from_sampling_params(batch, device)
    out = LogitsProcessorOutput(make_logits(seed=13).to(device).repeat(n, 1))
    pos = torch.arange(n, device=device)
    ids = Sampler("flashinfer")(out, info, False, [0] * n, [None] * n, positions=pos)
    assert calls == [n] and ids.shape == (n,)


@pytest.mark.parametrize("name, absent", [
    ("plain", ("top_k", "top_p", "min_p")),
    ("top-k-top-p", ("min_p",)),
    ("min-p-beside-top-k", ("top_p",)),
    ("one-seeded", ("top_k", "min_p")),
])  # fmt: skip
def test_the_kernel_backend_leaves_out_the_filters_no_request_uses(
    name, absent, device, monkeypatch
):
    """A filter whose batch flag says no request uses it reaches the op as None (the op
    then skips the launches only cuts need); the others as the batch's per-row tensors."""
    seen = []
    real = sampler_module.top_k_top_p_min_p_sampling_from_logits

    def spy(logits, temperature, top_k, top_p, min_p, **kwargs):
        seen.append({"top_k": top_k, "top_p": top_p, "min_p": min_p})
        return real(logits, temperature, top_k, top_p, min_p, **kwargs)

    monkeypatch.setattr(sampler_module, "top_k_top_p_min_p_sampling_from_logits", spy)
    batch = KERNEL_BATCHES[name]
    info = SamplingBatchInfo.from_sampling_params(batch, device)
    out = LogitsProcessorOutput(make_logits(seed=13).to(device).repeat(len(batch), 1))
    pos = torch.arange(len(batch), device=device)
    Sampler("flashinfer")(out, info, False, [0] * len(batch), [None] * len(batch), positions=pos)
    (passed,) = seen
    for filt, value in passed.items():
        if filt in absent:
            assert value is None, f"{filt} was passed though no request uses it"
        else:
            assert value is getattr(
                info, {"top_k": "top_ks", "top_p": "top_ps", "min_p": "min_ps"}[filt]
            )


def test_a_seeded_request_ignores_its_batch_mates_on_both_backends(backend, device):
    """One seeded request (top-k, top-p and min-p) among different batch-mates gets the
    token it gets alone, on either backend, and the same token on both backends (float32
    keys on a GPU kernel could differ at a near-tie: probability ~1e-6 per row)."""
    logits = make_logits(seed=14)
    seeded = SamplingParams(temperature=1.2, top_k=25, top_p=0.9, min_p=0.02, sampling_seed=77)
    pos = torch.tensor([5, 900, 3], device=device)
    alone = []
    for b in ("pytorch", "flashinfer"):
        for p in pos.tolist():
            alone.append(
                run(b, device, logits, seeded, 1, positions=torch.tensor([p]).to(device))[0]
            )
    alone = torch.cat(alone).view(2, 3)
    assert torch.equal(alone[0], alone[1]), "the backends drew different tokens"
    mates = [SamplingParams(top_k=3), SamplingParams(min_p=0.3, sampling_seed=1), SamplingParams()]
    g = torch.Generator().manual_seed(15)
    for slot in range(3):
        batch = mates[:slot] + [seeded] + mates[slot:]
        logits_b = torch.randn(4, VOCAB, generator=g) * 2
        logits_b[slot] = logits
        info = SamplingBatchInfo.from_sampling_params(batch, device)
        out = LogitsProcessorOutput(logits_b.to(device))
        positions = torch.tensor([11, 12, 13, 14]).to(device)
        positions[slot] = pos[slot]
        ids = Sampler(backend)(out, info, False, [0] * 4, [None] * 4, positions=positions)
        assert ids[slot] == alone[0, slot], f"slot {slot}"


def test_unseeded_kernel_batches_need_no_positions(device):
    n = 20_000 if is_gpu(device) else 4_000
    params = SamplingParams(temperature=0.9, top_k=12, top_p=0.85, min_p=0.03)
    ids, _ = run("flashinfer", device, make_logits(seed=16), params, n)
    assert_matches_distribution(
        ids, exact_distribution(make_logits(seed=16), params), "no positions"
    )


@pytest.mark.parametrize("seed", range(3), ids=lambda s: f"seed{s}")
def test_the_sort_path_is_the_fused_ops_definition(seed):
    """The pytorch backend's seeded draw equals the fused op's CPU reference token for
    token (both float64), on hostile rows (ties, NaN, negatives, +inf, all-zero and
    subnormal rows, unnormalised) with every edge value of every parameter."""
    g = torch.Generator().manual_seed(seed)
    rows, vocab = 400, 37
    x = torch.softmax(torch.round(torch.randn(rows, vocab, generator=g) * 8) / 4, dim=-1)
    x *= torch.rand(rows, 1, generator=g) * 3
    x[torch.rand(rows, vocab, generator=g) < 0.05] = float("nan")
    x[torch.rand(rows, vocab, generator=g) < 0.05] *= -1
    x[0, 3], x[1], x[2] = float("inf"), 0.0, 1e-40
    pick = lambda v: torch.tensor(v)[torch.randint(len(v), (rows,), generator=g)]  # noqa: E731
    k = pick([-1, 0, 1, 3, 10, 36, 37, 1 << 30]).to(torch.int32)
    p = pick([float("nan"), -0.5, 0.0, 0.3, 0.7, 0.95, 1.0, 2.0]).float()
    m = pick([float("nan"), -1.0, 0.0, 0.05, 0.3, 1.0, 1.5]).float()
    seeds = torch.randint(-(2**63), 2**63 - 1, (rows,), generator=g)
    positions = torch.randint(0, 1 << 40, (rows,), generator=g)
    got = sampler_module.top_k_top_p_min_p_sampling_from_probs_torch(
        x, k, p, m, True, seeds, positions
    )
    want = fused_sample(x, k, p, m, seeds, positions)
    assert torch.equal(got, want), torch.nonzero(got != want).view(-1).tolist()


def test_seeded_rows_must_be_row_indices_on_the_logits_device():
    info = SamplingBatchInfo.from_sampling_params(
        [SamplingParams(sampling_seed=1), SamplingParams()], "cpu"
    )
    info.seeded_rows = torch.tensor([0, 1, 1], dtype=torch.int64)
    out = LogitsProcessorOutput(make_logits().repeat(2, 1))
    with pytest.raises(ValueError, match=r"seeded_rows must be an int64 vector of at most 2"):
        Sampler("pytorch")(
            out, info, False, [0, 0], [None, None], positions=torch.zeros(2, dtype=torch.int64)
        )


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(
        ValueError,
        match=r"sampling backend must be one of \('flashinfer', 'pytorch'\), got 'triton'",
    ):
        Sampler("triton")


def test_backend_defaults(monkeypatch):
    monkeypatch.delenv("SGLANG_SAMPLING_BACKEND", raising=False)
    assert resolve_sampling_backend(None, torch.device("cpu")) == "pytorch"
    gpu = types.SimpleNamespace(type="musa")
    expected = "flashinfer" if sampler_module.KERNELS_UNAVAILABLE_REASON is None else "pytorch"
    assert resolve_sampling_backend(None, gpu) == expected
    monkeypatch.setenv("SGLANG_SAMPLING_BACKEND", "pytorch")
    assert resolve_sampling_backend(None, gpu) == "pytorch"


def test_flashinfer_without_kernels_says_why(monkeypatch):
    monkeypatch.setattr(sampler_module, "KERNELS_UNAVAILABLE_REASON", "sgl_kernel is not built")
    with pytest.raises(RuntimeError, match="'flashinfer' cannot run: sgl_kernel is not built"):
        Sampler("flashinfer")
    assert resolve_sampling_backend(None, types.SimpleNamespace(type="cuda")) == "pytorch"
