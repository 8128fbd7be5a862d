"""Upstream SGLang 0.5.23's Sampler, its MUSA branch forced, sampling through our ops.

Every path of upstream's ``Sampler.forward`` that reaches sgl_kernel runs here: the
joint top-k/top-p kernel (batches without min-p), the min-p chain (top-k renorm, top-p
renorm, min-p sampling), and the sampling-mask capture that calls the renorm
functions; plus the import site in ``sglang/kernels/ops/sampling/renorm.py``. Batches
come from upstream's own ``SamplingBatchInfo.from_schedule_batch`` and
``SamplingParams``; logits are float32 or bfloat16, contiguous or the ``[:, :vocab]``
view of padded logits (upstream passes such a non-contiguous view as ``probs`` in
min-p batches; the padding holds large logits, so reading it would show up as
forbidden tokens).

A batch holds R copies of a few requests. For each request: every token drawn lies in
the exact filtered support and the frequencies fit the exact filtered distribution
(Pearson chi-square at a false-alarm rate of ``sgl_kernel.testing.ALPHA`` per request,
fixed seeds, so the suite is deterministic); the logprobs upstream returns equal its
definition (log-softmax of the temperature-scaled logits) computed here in float64.
Exact distributions use ``sgl_kernel.sampling_reference``'s masks on logits whose
filter boundaries lie far from any rounding, so float32 and bfloat16 keep the same
tokens.
"""

from __future__ import annotations

import sys

import pytest
import torch

import sgl_kernel
from sgl_kernel import sampling_reference as ref
from sgl_kernel.testing import assert_matches_distribution

VOCAB, PAD = 64, 8
COPIES = 3000  # draws per request
# Upstream returns log(probs) in the logits' dtype: bfloat16 rounds |log p| < 16 to 1/32.
LOGPROB_ATOL = {torch.float32: 1e-5, torch.bfloat16: 1 / 32 + 1e-3}
KERNEL_NAMES = (
    "min_p_sampling_from_probs",
    "top_k_renorm_prob",
    "top_k_top_p_sampling_from_probs",
    "top_p_renorm_prob",
)


# ----------------------------------------------------------------- requests and oracle


def row_logits(seed: int) -> torch.Tensor:
    """Distinct logits 0.12 apart, shuffled: probability ratios of at least e^0.09
    between neighbours, far above bfloat16's resolution."""
    g = torch.Generator().manual_seed(seed)
    return (torch.arange(VOCAB, dtype=torch.float64) * 0.12)[torch.randperm(VOCAB, generator=g)]


def top_p_between(p: torch.Tensor, target: float) -> float:
    """A top-p value halfway inside the cumulative-mass step that contains ``target``."""
    mass = torch.cumsum(torch.sort(p, descending=True).values, 0)
    j = int(torch.searchsorted(mass, torch.tensor(target, dtype=mass.dtype)))
    below = float(mass[j - 1]) if j > 0 else 0.0
    return (below + float(mass[j])) / 2


def min_p_between(p: torch.Tensor, target: float) -> float:
    """A min-p value halfway (geometrically) between two neighbouring ratios p_i / max."""
    ratios = torch.sort(p / p.max(), descending=True).values
    j = int((ratios >= target).sum()) - 1
    return float((ratios[j] * ratios[j + 1]).sqrt())


def _renorm(p: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    q = torch.where(keep, p, 0.0)
    return q / q.sum()


def exact_distribution(p: torch.Tensor, params) -> torch.Tensor:
    """What upstream's flashinfer backend samples from, for one request (float64), given
    the probabilities ``p`` it computes for that request.

    Without min-p: the joint rule (a token is kept iff both top-k and top-p keep it on
    the original row). With min-p: top-k renorm, then top-p on that row, then min-p.
    """
    p = (p / p.sum()).view(1, -1)
    k = torch.tensor([min(params.top_k, VOCAB)])
    top_p = torch.tensor([params.top_p], dtype=torch.float64)
    if params.min_p > 0:
        q = _renorm(p, ref.top_k_keep(p, k))
        q = _renorm(q, ref.top_p_keep(q, top_p))
        keep = ref.min_p_keep(q, torch.tensor([params.min_p], dtype=torch.float64))
        return _renorm(q, keep).view(-1)
    return _renorm(p, ref.top_k_keep(p, k) & ref.top_p_keep(p, top_p)).view(-1)


def probs_as_upstream_computes(logits: torch.Tensor, temperature: float, dtype) -> torch.Tensor:
    """Upstream divides the logits by the temperature in place and takes the softmax,
    both in the logits' dtype; done the same way here, then widened to float64."""
    scaled = (logits.to(dtype).float() / torch.tensor(temperature)).to(dtype)
    return torch.softmax(scaled, -1).double()


# Requests per batch: (label, seed of its logits, sampling parameters). top_p / min_p
# given as ("mass", x) / ("ratio", x) are placed between two tokens near x.
JOINT_BATCH = [
    ("top_k=5 T=0.8", 1, dict(temperature=0.8, top_k=5)),
    ("top_p~0.6", 2, dict(temperature=1.0, top_p=("mass", 0.6))),
    ("top_k=12 top_p~0.5 T=1.3", 3, dict(temperature=1.3, top_k=12, top_p=("mass", 0.5))),
    ("greedy (T=0)", 4, dict(temperature=0.0)),
    ("temperature only T=0.7", 5, dict(temperature=0.7)),
]
MIN_P_BATCH = [
    ("min_p~0.2", 6, dict(temperature=1.0, min_p=("ratio", 0.2))),
    ("top_k=10 min_p~0.1 T=0.8", 7, dict(temperature=0.8, top_k=10, min_p=("ratio", 0.1))),
    (
        "top_p~0.7 min_p~0.05 T=1.2",
        8,
        dict(temperature=1.2, top_p=("mass", 0.7), min_p=("ratio", 0.05)),
    ),
    ("greedy (T=0)", 9, dict(temperature=0.0)),
    ("top_k=20 T=0.9", 10, dict(temperature=0.9, top_k=20)),
]
BATCHES = {"joint": JOINT_BATCH, "min_p": MIN_P_BATCH}
# Which of upstream's sgl_kernel names each path must call.
CALLED = {
    "joint": {"top_k_top_p_sampling_from_probs"},
    "min_p": {"top_k_renorm_prob", "top_p_renorm_prob", "min_p_sampling_from_probs"},
}


class Req:
    """The fields of a scheduler request that SamplingBatchInfo reads."""

    def __init__(self, sampling_params, return_sampling_mask=False):
        self.sampling_params = sampling_params
        self.return_sampling_mask = return_sampling_mask
        self.sampling_logprobs_mode = None
        self.custom_logit_processor = None


class Batch:
    """A weak-referenceable stand-in for ScheduleBatch (the penalizers keep a weakref)."""

    def __init__(self, reqs, device):
        self.reqs = reqs
        self.device = device


def build_requests(upstream, specs, dtype):
    """(label, logits, upstream SamplingParams, probabilities upstream computes) each."""
    out = []
    for label, seed, given in specs:
        logits = row_logits(seed)
        kw = dict(given)
        temperature = kw["temperature"] if kw["temperature"] > 0 else 1.0  # greedy: T=1
        p = probs_as_upstream_computes(logits, temperature, dtype)
        if isinstance(kw.get("top_p"), tuple):
            kw["top_p"] = top_p_between(p / p.sum(), kw["top_p"][1])
        if isinstance(kw.get("min_p"), tuple):
            q = p.view(1, -1)
            if "top_k" in kw:
                q = _renorm(q, ref.top_k_keep(q, torch.tensor([kw["top_k"]])))
            kw["min_p"] = min_p_between(q.view(-1), kw["min_p"][1])
        params = upstream.SamplingParams(**kw)
        params.normalize(None)
        params.verify(VOCAB)
        out.append((label, logits, params, p))
    return out


def make_logits(requests, copies, dtype, layout, device):
    rows = torch.cat([logits.view(1, -1).expand(copies, -1) for _, logits, _, _ in requests])
    if layout == "padded-view":
        padded = torch.full((rows.size(0), VOCAB + PAD), 40.0, dtype=torch.float64)
        padded[:, :VOCAB] = rows
        return padded.to(dtype).to(device)[:, :VOCAB]
    return rows.to(dtype).to(device)


def run_sampler(upstream, requests, copies, logits, device, return_sampling_mask=False):
    reqs = [
        Req(params, return_sampling_mask) for _, _, params, _ in requests for _ in range(copies)
    ]
    info = upstream.SamplingBatchInfo.from_schedule_batch(Batch(reqs, device), VOCAB)
    output = upstream.LogitsProcessorOutput(next_token_logits=logits)
    n = len(reqs)
    ids = upstream.sampler.forward(
        output, info, True, [0] * n, [None] * n, torch.zeros(n, dtype=torch.int64, device=device)
    )
    return ids, output


@pytest.fixture
def kernel_calls(upstream, monkeypatch):
    """Records which of upstream's sgl_kernel names run, and the probs each receives."""
    calls = []
    for name in KERNEL_NAMES:
        real = getattr(upstream.sampler_module, name)

        def spy(probs, *args, _name=name, _real=real, **kwargs):
            calls.append((_name, probs.dtype, probs.is_contiguous()))
            return _real(probs, *args, **kwargs)

        monkeypatch.setattr(upstream.sampler_module, name, spy)
    return calls


# ---------------------------------------------------------------------------- tests


def test_upstream_musa_branch_bound_our_functions(upstream):
    import sglang

    assert sglang.__version__ == "0.5.23"
    for name in KERNEL_NAMES:
        assert getattr(upstream.sampler_module, name) is getattr(sgl_kernel, name), name
    renorm = upstream.renorm_module
    assert renorm.top_k_renorm_prob is sgl_kernel.top_k_renorm_probs
    assert renorm.top_p_renorm_prob is sgl_kernel.top_p_renorm_probs
    assert upstream.exec_config.kernel.sampling_backend == "flashinfer"


def test_the_musa_disguise_does_not_outlive_the_import(upstream):
    assert not upstream.common.is_musa()
    assert getattr(torch.version, "musa", None) is None
    torchada = sys.modules.get("torchada")
    assert torchada is None or getattr(torchada, "__file__", None) is not None, "stub left"
    assert torch.cuda.is_available.__module__ == "torch.cuda"


@pytest.mark.parametrize("layout", ["contiguous", "padded-view"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("path", list(BATCHES))
def test_upstream_sampler_draws_the_exact_filtered_distribution(
    upstream, kernel_calls, device, path, dtype, layout
):
    requests = build_requests(upstream, BATCHES[path], dtype)
    logits = make_logits(requests, COPIES, dtype, layout, device)
    torch.manual_seed(1234)
    ids, output = run_sampler(upstream, requests, COPIES, logits, device)

    assert {name for name, _, _ in kernel_calls} == CALLED[path]
    first_name, first_dtype, first_contiguous = kernel_calls[0]
    assert first_dtype == dtype, "upstream passes probs in the logits' dtype"
    if path == "min_p":
        # The min-p chain receives the padded view itself (the case that broke before).
        assert first_contiguous == (layout == "contiguous")

    ids = ids.cpu()
    logprobs = output.next_token_logprobs.double().cpu()
    for i, (label, _, params, p) in enumerate(requests):
        block = slice(i * COPIES, (i + 1) * COPIES)
        expected = exact_distribution(p, params)
        assert_matches_distribution(ids[block], expected, f"{path}/{label}")
        torch.testing.assert_close(
            logprobs[block],
            torch.log(p)[ids[block].long()],
            atol=LOGPROB_ATOL[dtype],
            rtol=0,
            msg=lambda m, label=label: f"{path}/{label} logprobs: {m}",
        )


@pytest.mark.parametrize(
    "dtype,layout",
    [(torch.float32, "contiguous"), (torch.bfloat16, "padded-view")],
    ids=["float32-contiguous", "bfloat16-padded-view"],
)
@pytest.mark.parametrize("path", list(BATCHES))
def test_upstream_sampling_mask_capture_reports_the_exact_support(
    upstream, kernel_calls, device, path, dtype, layout
):
    """With return_sampling_mask, upstream re-derives each row's support through the
    renorm functions: its support, lengths and logprobs must be the exact ones."""
    copies = 20
    requests = build_requests(upstream, BATCHES[path], dtype)
    logits = make_logits(requests, copies, dtype, layout, device)
    torch.manual_seed(99)
    ids, output = run_sampler(upstream, requests, copies, logits, device, return_sampling_mask=True)
    mask = output.sampling_mask_output
    called = {name for name, _, _ in kernel_calls}
    assert {"top_k_renorm_prob", "top_p_renorm_prob"} & called

    ids = ids.cpu()
    statuses, lengths = mask.statuses.cpu(), mask.lengths.cpu()
    token_ids, selected = mask.token_ids.cpu(), mask.selected_logprobs.double().cpu()
    assert bool((statuses == int(upstream.SamplingMaskStatus.OK)).all())
    for i, (label, _, params, p) in enumerate(requests):
        expected = exact_distribution(p, params)
        support = set(torch.nonzero(expected > 0).view(-1).tolist())
        for r in range(i * copies, (i + 1) * copies):
            assert int(lengths[r]) == len(support), f"{path}/{label}: support size"
            assert set(token_ids[r, : len(support)].tolist()) == support, f"{path}/{label}"
            token = int(ids[r])
            assert token in support, f"{path}/{label}: token {token} outside the support"
            assert (
                abs(float(selected[r]) - float(torch.log(expected[token]))) <= LOGPROB_ATOL[dtype]
            )


def _renormed(probs: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    kept = torch.where(keep, probs, 0.0)
    return kept / kept.sum(-1, keepdim=True)


@pytest.mark.parametrize("layout", ["contiguous", "padded-view"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_renorm_import_site_renormalises_exactly(upstream, device, dtype, layout):
    """sglang.kernels.ops.sampling.renorm's names, called as its users call them."""
    rows = torch.stack([torch.softmax(row_logits(seed), -1) for seed in range(20, 25)])
    probs = make_logits([(None, row, None, None) for row in rows], 1, dtype, layout, device)
    seen = probs.double().cpu()  # exactly the values the ops receive
    total = seen.sum(-1, keepdim=True)
    top_k = torch.tensor([1, 3, 10, 64, 1 << 30], dtype=torch.int32)
    top_p = torch.tensor(
        [top_p_between(row, x) for row, x in zip(seen / total, [0.2, 0.5, 0.9, 0.99, 0.7])]
    )

    got_k = upstream.renorm_module.top_k_renorm_prob(probs, top_k.to(device))
    keep_k = ref.top_k_keep(seen, top_k.clamp(max=VOCAB))
    assert torch.equal(got_k.cpu() > 0, keep_k)
    torch.testing.assert_close(got_k.double().cpu(), _renormed(seen, keep_k), atol=1e-6, rtol=1e-5)

    got_p = upstream.renorm_module.top_p_renorm_prob(probs, top_p.float().to(device))
    keep_p = ref.top_p_keep(seen / total, top_p)
    assert torch.equal(got_p.cpu() > 0, keep_p)
    torch.testing.assert_close(got_p.double().cpu(), _renormed(seen, keep_p), atol=1e-6, rtol=1e-5)
