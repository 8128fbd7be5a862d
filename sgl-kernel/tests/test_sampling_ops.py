"""The sgl_kernel sampling ops: contract, masks, renormalisation, samples, RNG, bad input.

Every op is described once, by its record in ``sgl_kernel.testing.OP_CASES`` (how to
call it, its raw op's arguments and schema, what it must return); the tests below are
parametrised over those records. Runs on the CPU (torch-native reference kernels) and
on the GPU build when a GPU is visible; GPU runs use the acceptance sizes (1000 trials
over batch {1, 99, 989} x vocab {111, 32000, 128256}; 1e6 draws per distribution case).

Inputs that could hang or fault a GPU kernel (+-inf, negatives, unnormalised rows,
misaligned views, huge top_k, out-of-range per-row parameters) are in test_hazards.py,
which runs each in a child process with a timeout.
"""

import re
import subprocess
import sys

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import sgl_kernel
from sgl_kernel import sampling_reference as ref
from sgl_kernel.testing import (
    OP_CASE,
    OP_CASES,
    RAW_OP_CASES,
    SAMPLERS,
    TOP_K_ALL,
    Params,
    assert_mask_matches,
    assert_matches_distribution,
    assert_renorm_matches,
    is_gpu,
)

by_id = dict(ids=lambda case: case.id)

# --------------------------------------------------------------------------- inputs


def make_probs(batch, vocab, device, seed=0, ties=True):
    """LLM-like peaked rows; with ties=True some values repeat exactly (pivot ties)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, vocab, generator=g) * 3
    if ties:
        logits = torch.round(logits * 4) / 4
    return torch.softmax(logits, dim=-1).to(device)


def row_params(batch, device, seed=0) -> Params:
    """Per-row top_k (int32), top_p and min_p (float32) tensors, some rows unfiltered."""
    g = torch.Generator().manual_seed(seed + 1)
    top_k = torch.randint(1, 60, (batch,), generator=g, dtype=torch.int32)
    top_k[::7] = TOP_K_ALL
    top_p = torch.rand(batch, generator=g) * 0.9 + 0.1
    top_p[::5] = 1.0
    min_p = torch.rand(batch, generator=g) * 0.3
    return Params(top_k, top_p, min_p).to(device)


def op_input(case, probs):
    """The op's input: probabilities, or their logarithm for top_k_mask_logits."""
    return torch.log(probs) if case.kind == "mask" else probs


def check_result(case, got, x, params, what):
    """Renorm and mask outputs against the exact result (support and values)."""
    want = case.expected(x, params)
    if case.kind == "mask":
        assert_mask_matches(got, want, what)
    else:
        assert_renorm_matches(got, want, what)


# --------------------------------------------------------------------------- contract


# The fused seeded op has no OP_CASES record (its arguments are per-row tensors only, no
# indices, deterministic flag or generator); test_fused_sampling.py checks its schema,
# reference, validator and export.
FUSED_OP = "top_k_top_p_min_p_sampling_from_probs"


# The seeded ops have files of their own (test_fused_sampling.py, test_logits_sampling.py).
OWN_FILE_OPS = [FUSED_OP, "top_k_top_p_min_p_sampling_from_logits"]


def test_every_op_has_a_record_and_a_reference():
    recorded = [case.op for case in RAW_OP_CASES]
    assert not set(OWN_FILE_OPS) & set(recorded)
    assert sorted(recorded + OWN_FILE_OPS) == sorted(ref.OPS)


@pytest.mark.parametrize("case", RAW_OP_CASES, **by_id)
def test_registered_schema_is_the_contract(case):
    schema = str(getattr(torch.ops.sgl_kernel, case.op).default._schema)
    assert schema == f"sgl_kernel::{case.op}{case.schema}"


class _RecordOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls.append((func, args, kwargs or {}))
        return func(*args, **(kwargs or {}))


def _matches(arg_type: str, value) -> bool:
    optional = re.fullmatch(r"Optional\[(\w+)\]", arg_type)
    base = optional.group(1) if optional else arg_type
    if value is None:
        return optional is not None
    return {
        "Tensor": isinstance(value, torch.Tensor),
        "float": isinstance(value, float),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "Generator": isinstance(value, torch.Generator),
    }[base]


CALL_VARIANTS = [
    pytest.param(case, params, with_indices, id=f"{case.id}-{params}" + ("-indices" * with_indices))
    for case in RAW_OP_CASES
    for params in ("scalar", "tensor")
    for with_indices in ((False, True) if case.kind == "sample" else (False,))
]


@pytest.mark.parametrize("case,params,with_indices", CALL_VARIANTS)
def test_wrapper_arguments_fit_the_registered_schema(case, params, with_indices):
    probs = make_probs(4, 50, "cpu")
    values = row_params(4, "cpu") if params == "tensor" else Params(5, 0.7, 0.1)
    kwargs = {}
    if case.kind == "sample":
        kwargs["generator"] = torch.Generator().manual_seed(1)
        if with_indices:
            kwargs["indices"] = torch.tensor([3, 0, 0], dtype=torch.int32)
    with _RecordOps() as rec:
        case.call(op_input(case, probs), values, **kwargs)
    ours = [c for c in rec.calls if c[0].namespace == "sgl_kernel"]
    assert [c[0]._schema.name for c in ours] == [f"sgl_kernel::{case.op}"]
    func, args, kwargs = ours[0]
    schema_args = func._schema.arguments
    assert len(args) + len(kwargs) == len(schema_args)
    for arg, value in zip(schema_args, args):
        assert _matches(str(arg.type), value), (
            f"{case.op}: {arg.name}: {arg.type} got {type(value)}"
        )


OPCHECK_VARIANTS = [
    pytest.param(case, params, id=f"{case.id}-{params}")
    for case in RAW_OP_CASES
    for params in ("scalar", "tensor", "indices")
    if params != "indices" or case.kind == "sample"
]


@pytest.mark.parametrize("case,params", OPCHECK_VARIANTS)
def test_opcheck(case, params, device):
    probs = make_probs(3, 40, device)
    values = Params(7, 0.8, 0.1) if params == "scalar" else row_params(3, device)
    indices = None
    if params == "indices":
        indices = torch.tensor([2, 0, 2, 1, 1], dtype=torch.int32, device=device)
    args = case.raw_args(op_input(case, probs), values, indices=indices)
    # Sampling is random: the aot_dispatch comparison of two runs does not apply to it.
    tests = ["test_schema", "test_autograd_registration", "test_faketensor"]
    if case.kind != "sample":
        tests.append("test_aot_dispatch_dynamic")
    torch.library.opcheck(getattr(torch.ops.sgl_kernel, case.op).default, args, test_utils=tests)


# --------------------------------------------------------------------------- meta / fake


@pytest.mark.parametrize("case", RAW_OP_CASES, **by_id)
@pytest.mark.parametrize("on_meta", ["output", "param"])
def test_a_meta_argument_next_to_cpu_probs_is_a_clear_error(case, on_meta):
    """The dispatcher sends a call with any meta tensor to the fake kernel; it must
    reject the device mix, not return uninitialised memory as results."""
    probs = make_probs(3, 40, "cpu")
    values = row_params(3, "cpu")
    out = None
    if on_meta == "output":
        args = case.raw_args(op_input(case, probs), values)
        out = torch.empty_like(args[1], device="meta")
    elif case.filters:
        name = case.filters[0]
        values = Params(**{**values.__dict__, name: values.get(name).to("meta")})
    else:
        pytest.skip("sampling_from_probs has no parameter array")
    args = case.raw_args(op_input(case, probs), values, out=out)
    with pytest.raises(RuntimeError, match=r"must be on the same device as the probabilities"):
        getattr(torch.ops.sgl_kernel, case.op).default(*args)


def test_a_meta_argument_through_the_wrapper_is_a_clear_error():
    probs = make_probs(3, 40, "cpu")
    with pytest.raises(ValueError, match=r"top_p must be on the same device as probs"):
        sgl_kernel.top_p_sampling_from_probs(probs, torch.ones(3, device="meta"))
    out = torch.empty(3, dtype=torch.int32, device="meta")
    with pytest.raises(RuntimeError, match=r"output must be on the same device"):
        torch.ops.sgl_kernel.sampling_from_probs.default(probs, out, None, True, None)


@pytest.mark.parametrize("case", RAW_OP_CASES, **by_id)
def test_fake_kernels_validate_like_the_real_ones(case):
    """All-meta calls run the fake: valid arguments pass, a bad scalar or shape fails
    with the real kernel's message."""
    probs = make_probs(3, 40, "cpu").to("meta")
    op = getattr(torch.ops.sgl_kernel, case.op).default
    op(*case.raw_args(op_input(case, probs), Params(7, 0.8, 0.1)))
    bad = {"top_k": Params(top_k=0), "top_p": Params(top_p=1.5), "min_p": Params(min_p=-0.5)}
    for name in case.filters:
        with pytest.raises(RuntimeError, match=rf"{name}_val must be"):
            op(*case.raw_args(probs, bad[name]))
    wrong = torch.empty(2, 40, device="meta") if case.kind != "sample" else None
    if wrong is None:
        wrong = torch.empty(2, dtype=torch.int32, device="meta")
    with pytest.raises(RuntimeError, match=r"must (be 1-D of length 3|have the input's shape)"):
        op(*case.raw_args(probs, Params(7, 0.8, 0.1), out=wrong))


# --------------------------------------------------------------------------- the oracle


def _contract_keep(x, k=None, p=None, m=None):
    """The contract's rules, literally (O(vocab^2)); per-row k, p, min_p tensors."""
    w = torch.where(x > 0, x, 0.0)  # NaN and negatives weigh 0
    total = w.sum(-1, keepdim=True)  # in float32, as the kernels sum
    normal = (total >= torch.finfo(torch.float32).tiny) & torch.isfinite(total)
    w = torch.where(normal, w, 0.0).double()  # invalid rows weigh 0
    greater = w.unsqueeze(-1) < w.unsqueeze(-2)  # [b, i, j]: w_j > w_i
    keep = w > 0
    if k is not None:
        keep &= greater.sum(-1) < k.double().clamp_min(1).view(-1, 1)
    if p is not None:
        p = p.double().view(-1, 1)
        mass = (greater * w.unsqueeze(-2)).sum(-1)
        inside = torch.where(p > 0, mass < p * w.sum(-1, keepdim=True), mass == 0)
        keep &= inside | (p >= 1)
    if m is not None:
        m = torch.nan_to_num(m.double(), nan=1.0).clamp(0, 1).view(-1, 1)
        keep &= w >= m * w.amax(-1, keepdim=True)
    return keep


def _contract_logits_keep(x, k):
    v = x.double()
    nan = v.isnan()
    greater = (v.unsqueeze(-1) < v.unsqueeze(-2)) & ~nan.unsqueeze(-2)
    return (greater.sum(-1) < k.double().clamp_min(1).view(-1, 1)) & ~nan


def _hostile_rows(seed):
    """Ties, zeros, NaN, +-inf, negatives, subnormals, all-invalid rows, unnormalised."""
    x = make_probs(16, 61, "cpu", seed=seed)
    x[1] *= 7.25  # unnormalised
    x[2, ::3] = 0.0
    x[3, 5] = float("nan")
    x[4, 7] = float("inf")  # makes the row invalid
    x[12, :2] = 3e38  # a total past the float32 range: invalid too
    x[5, 2] = float("-inf")
    x[6, ::4] = -x[6, ::4]
    x[7] = 0.0
    x[8] = float("nan")
    x[9, :10] = 1e-40  # subnormal
    x[10] = -1.0
    x[11] = x[11] * 1e-3
    return x


def _hostile_params(batch, seed):
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(-3, 20, (batch,), generator=g, dtype=torch.int32)
    k[::5] = TOP_K_ALL
    p = torch.rand(batch, generator=g)
    p[:4] = torch.tensor([0.0, float("nan"), -1.0, 2.0])
    m = torch.rand(batch, generator=g) * 0.5
    m[:4] = torch.tensor([float("nan"), 2.0, -1.0, 1.0])
    return k, p, m


@pytest.mark.parametrize("seed", range(3))
def test_the_oracle_follows_the_contract(seed):
    """OP_CASES' expectations (built on sampling_reference) against the literal rules."""
    x = _hostile_rows(seed)
    k, p, m = _hostile_params(16, seed)
    params = Params(k, p, m)
    for case in OP_CASES:
        if case.kind == "mask" or case.order == "top_k_first":
            continue
        want = _contract_keep(
            x,
            k=k if "top_k" in case.filters else None,
            p=p if "top_p" in case.filters else None,
            m=m if "min_p" in case.filters else None,
        )
        assert torch.equal(case.keep(x, params), want), case.id
    logits = torch.log(make_probs(16, 61, "cpu", seed=seed))
    logits[0, 3] = float("inf")
    logits[1, 4] = float("nan")
    logits[2] = float("-inf")
    logits[3] = float("nan")
    logits[4, :5] = float("inf")
    assert torch.equal(
        OP_CASE["top_k_mask_logits"].keep(logits, params), _contract_logits_keep(logits, k)
    )


# --------------------------------------------------------------------------- masks


def _brute_force_or_ref_keep(case, x, params):
    # The O(vocab^2) literal rules only for small vocabularies; the oracle is checked
    # against them above.
    if x.size(1) > 200:
        return case.keep(x.cpu(), params.to("cpu"))
    x, params = x.cpu(), params.to("cpu")
    if case.kind == "mask":
        return _contract_logits_keep(x, torch.as_tensor(params.get("top_k")).expand(len(x)))
    rows = {n: torch.as_tensor(params.get(n)).expand(len(x)) for n in case.filters}
    return _contract_keep(x, k=rows.get("top_k"), p=rows.get("top_p"), m=rows.get("min_p"))


def _unambiguous_top_p(probs, seed):
    """Per-row p halfway between two adjacent nucleus masses: no rounding can move the cut."""
    g = torch.Generator().manual_seed(seed)
    sorted_p, _ = torch.sort(probs.double().cpu(), dim=-1, descending=True)
    csum = torch.cumsum(sorted_p, -1)
    n = torch.randint(0, min(8, probs.size(1) - 1), (probs.size(0),), generator=g)
    lo = torch.gather(csum, 1, n.view(-1, 1)).view(-1)
    hi = torch.gather(csum, 1, (n + 1).view(-1, 1)).view(-1)
    return ((lo + hi) / 2).float().to(probs.device)


RENORM_VARIANTS = [
    pytest.param("top_k_renorm", "per-row", id="top_k-per-row"),
    pytest.param("top_k_renorm", 5, id="top_k-5"),
    pytest.param("top_k_renorm", 1, id="top_k-1"),
    pytest.param("top_p_renorm", "per-row", id="top_p-per-row"),
    pytest.param("top_p_renorm", 1.0, id="top_p-1"),
]


@pytest.mark.parametrize("vocab", [111, 32000])
@pytest.mark.parametrize("case_id,value", RENORM_VARIANTS)
def test_renorm_ops_give_the_exact_support_and_values(device, vocab, case_id, value):
    """Zeros exactly where the filter drops a token, w_i / sum(kept) elsewhere."""
    case = OP_CASE[case_id]
    # top-k is an exact count: ties are fine; top-p gets distinct values and a p that
    # no summation order can move across a token.
    probs = make_probs(64, vocab, device, ties=case_id == "top_k_renorm")
    name = case.filters[0]
    if value != "per-row":
        params = Params(**{name: value})
    elif name == "top_k":
        params = Params(top_k=row_params(64, device).top_k)
    else:
        params = Params(top_p=_unambiguous_top_p(probs, 0))
    got = case.call(probs, params)
    keep = _brute_force_or_ref_keep(case, probs, params)
    kept = torch.where(keep, probs.double().cpu(), 0.0)
    want = (kept / kept.sum(-1, keepdim=True)).float()
    assert_renorm_matches(got, want, f"{case_id} {value}")
    # float32 rows of up to 32000 entries, each divided by a float32 total
    torch.testing.assert_close(
        got.double().sum(-1).cpu(), torch.ones(64, dtype=torch.float64), rtol=1e-5, atol=0
    )


@pytest.mark.parametrize("value", ["per-row", 1, 7, TOP_K_ALL], ids=str)
def test_top_k_mask_logits_matches_the_exact_filter(device, value):
    case = OP_CASE["top_k_mask_logits"]
    logits = torch.log(make_probs(32, 150, device))
    params = Params(top_k=row_params(32, device).top_k if value == "per-row" else value)
    got = case.call(logits, params)
    keep = _brute_force_or_ref_keep(case, logits, params).to(device)
    assert_mask_matches(got, torch.where(keep, logits, float("-inf")), f"mask k={value}")
    if value == TOP_K_ALL:
        assert torch.equal(got, logits)


# Rows whose values are exact in binary, so every sum and comparison below is exact.
# Ties at the top-k pivot and at the min-p threshold are kept; top-p keeps tokens
# tied in value together.
_TIES = [0.375, 0.1875, 0.1875, 0.1875, 0.0625]
TIE_CASES = [
    # (case id, params, row, kept tokens)
    pytest.param("top_k_renorm", Params(top_k=2), _TIES, [0, 1, 2, 3], id="top_k_renorm-k2-tie"),
    pytest.param("top_k_renorm", Params(top_k=4), _TIES, [0, 1, 2, 3], id="top_k_renorm-k4"),
    pytest.param("top_p_renorm", Params(top_p=0.5), _TIES, [0, 1, 2, 3], id="top_p_renorm-tie"),
    pytest.param("top_k_sampling", Params(top_k=2), _TIES, [0, 1, 2, 3], id="top_k-k2-tie"),
    pytest.param("top_p_sampling", Params(top_p=0.5), _TIES, [0, 1, 2, 3], id="top_p-tie"),
    pytest.param("min_p_sampling", Params(min_p=0.5), _TIES, [0, 1, 2, 3], id="min_p-at-threshold"),
    pytest.param("joint_sampling", Params(2, 1.0), _TIES, [0, 1, 2, 3], id="joint-k2-tie"),
    pytest.param("top_k_first_sampling", Params(2, 1.0), _TIES, [0, 1, 2, 3], id="k_first-k2-tie"),
    # top-p boundary: tokens 1 and 2 have exactly 0.5 = p * S above them, which is not
    # < p * S: only token 0 is kept (a `<=` in the kernel would keep all three).
    pytest.param("top_p_renorm", Params(top_p=0.5), [0.5, 0.25, 0.25], [0], id="top_p_renorm-boundary"),
    pytest.param("top_p_sampling", Params(top_p=0.5), [0.5, 0.25, 0.25], [0], id="top_p-boundary"),
    pytest.param("joint_sampling", Params(3, 0.5), [0.5, 0.25, 0.25], [0], id="joint-p-boundary"),
    pytest.param("top_k_first_sampling", Params(3, 0.5), [0.5, 0.25, 0.25], [0], id="k_first-p-boundary"),
    # just above the boundary all three are kept
    pytest.param("top_p_sampling", Params(top_p=0.5000001), [0.5, 0.25, 0.25], [0, 1, 2], id="top_p-above-boundary"),
    # min-p threshold exactly at the tied tokens: >= keeps them
    pytest.param("min_p_sampling", Params(min_p=0.5), [0.5, 0.25, 0.25, 0.125], [0, 1, 2], id="min_p-boundary"),
]  # fmt: skip


@pytest.mark.parametrize("case_id,params,row,kept", TIE_CASES)
def test_ties_and_boundaries_on_the_ops(device, case_id, params, row, kept):
    case = OP_CASE[case_id]
    probs = torch.tensor([row], device=device)
    want_keep = torch.zeros(1, len(row), dtype=torch.bool)
    want_keep[0, kept] = True
    assert torch.equal(case.keep(probs.cpu(), params), want_keep), "oracle"
    if case.kind == "renorm":
        got = case.call(probs, params)
        kept_w = torch.where(want_keep, probs.cpu().double(), 0.0)
        assert_renorm_matches(got, (kept_w / kept_w.sum()).float(), case_id)
        return
    draws = 200_000 if is_gpu(device) else 20_000
    indices = torch.zeros(draws, dtype=torch.int32, device=device)
    gen = torch.Generator(device=device).manual_seed(17)
    ids = case.call(probs, params, indices=indices, generator=gen)
    expected = torch.where(want_keep[0], probs[0].cpu().double(), 0.0)
    assert_matches_distribution(ids, expected, case_id)
    assert set(torch.unique(ids).tolist()) == set(kept), case_id  # every kept token drawn


@pytest.mark.parametrize("k", [1, 2, 3], ids=lambda k: f"k{k}")
def test_top_k_mask_logits_keeps_ties_at_the_pivot(device, k):
    logits = torch.tensor([[2.0, 1.0, 1.0, 1.0, -0.5, 1.0]], device=device)
    got = sgl_kernel.top_k_mask_logits(logits, k)
    want = logits.clone()
    want[0, 4] = float("-inf")
    if k == 1:
        want[0, 1:] = float("-inf")
    assert_mask_matches(got, want, f"k={k}")


# --------------------------------------------------------------------------- samples

ALLOWED_SIZES_GPU = [(b, v) for b in (1, 99, 989) for v in (111, 32000, 128256)]
ALLOWED_SIZES_CPU = [(1, 111), (9, 111), (5, 3000)]


def _allowed(case, probs, params):
    """Tokens a correct kernel may return. top-p/min-p cuts get a 1e-5 slack: the kernels
    sum in float32, the reference in float64, and a boundary token may fall either way."""
    slack = Params(params.top_k, params.top_p + 1e-5, params.min_p * (1 - 1e-5))
    return case.keep(probs, slack)


@pytest.mark.parametrize("case", SAMPLERS, **by_id)
def test_every_sample_is_inside_the_allowed_set(device, case):
    sizes = ALLOWED_SIZES_GPU if is_gpu(device) else ALLOWED_SIZES_CPU
    trials = 1000 if is_gpu(device) else 50
    for batch, vocab in sizes:
        probs = make_probs(batch, vocab, device, seed=batch + vocab)
        params = row_params(batch, device, seed=vocab)
        allowed = _allowed(case, probs, params)
        rows = torch.arange(batch, device=device)
        gen = torch.Generator(device=device).manual_seed(7)
        bad = torch.zeros((), dtype=torch.long, device=device)
        for _ in range(trials):
            ids = case.call(probs, params, generator=gen)
            bad += (~allowed[rows, ids.long()]).sum()
        assert int(bad) == 0, (
            f"{case.id} {batch}x{vocab}: {int(bad)} samples outside the allowed set"
        )


# Every filter cuts the support of the test row; each case reads only its own filters.
DIST_PARAMS = Params(top_k=20, top_p=0.6, min_p=0.05)


@pytest.mark.parametrize("case", SAMPLERS, **by_id)
@pytest.mark.parametrize("deterministic", [True, False], ids=["deterministic", "fast"])
def test_sample_frequencies_match_the_filtered_distribution(device, case, deterministic):
    draws = 1_000_000 if is_gpu(device) else 100_000
    vocab = 4096 if is_gpu(device) else 64
    probs = make_probs(1, vocab, device, seed=11)
    # One probability row drawn `draws` times through `indices`: a single launch.
    indices = torch.zeros(draws, dtype=torch.int32, device=device)
    gen = torch.Generator(device=device).manual_seed(2024)
    ids = case.call(probs, DIST_PARAMS, indices=indices, generator=gen, deterministic=deterministic)
    assert ids.shape == (draws,) and ids.dtype == torch.int32
    expected = case.expected(probs, DIST_PARAMS)[0]
    assert (expected > 0).sum() < vocab or case.id == "sampling", "the filter must cut"
    assert_matches_distribution(ids, expected, f"{case.id} deterministic={deterministic}")


@pytest.mark.parametrize("case", SAMPLERS, **by_id)
def test_same_generator_state_gives_the_same_samples(device, case):
    probs = make_probs(256, 500, device)
    params = row_params(256, device)

    def draw(seed):
        return case.call(probs, params, generator=torch.Generator(device=device).manual_seed(seed))

    first = draw(5)
    assert torch.equal(first, draw(5))
    assert not torch.equal(first, draw(6))


@pytest.mark.parametrize("case", SAMPLERS, **by_id)
def test_a_row_total_rounded_either_side_of_one_samples_alike(device, case):
    """Two roundings of one distribution (e.g. softmax of masked logits and a renormalised
    softmax) must sample the same tokens from one generator state: only draws that fall
    within the rounding of a boundary may move. The rejection samplers correct their first
    draw for a total above 1 with an extra draw (patch 0006); taken from the row's own
    stream, it shifted every later round of about half the rows (FlashInfer's
    logits/probs alignment test saw 94% agreement)."""
    probs = make_probs(1024, 500, "cpu", ties=False).double()
    probs /= probs.sum(-1, keepdim=True)
    params = row_params(1024, device)
    params = Params(params.top_k, params.top_p * 0.6, params.min_p)  # several rounds a row

    def draw(scale):
        generator = torch.Generator(device=device).manual_seed(11)
        return case.call((probs * scale).float().to(device), params, generator=generator)

    below, above = draw(1 - 1e-5), draw(1 + 1e-5)
    assert (below == above).float().mean().item() >= 0.995


def test_default_generator_follows_manual_seed(device):
    probs = make_probs(256, 500, device)
    torch.manual_seed(3)
    first = sgl_kernel.top_p_sampling_from_probs(probs, 0.9)
    torch.manual_seed(3)
    assert torch.equal(first, sgl_kernel.top_p_sampling_from_probs(probs, 0.9))


@pytest.mark.parametrize("case", SAMPLERS, **by_id)
def test_indices_sample_the_mapped_rows(device, case):
    # Row 0 allows only token 0, row 1 only token 1 (under each filter's params).
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0]], device=device)
    params = Params(
        torch.tensor([1, 1], dtype=torch.int32, device=device),
        torch.tensor([0.5, 0.5], device=device),
        torch.tensor([0.5, 0.5], device=device),
    )
    if case.id == "sampling":
        probs = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=device)
    indices = torch.tensor([1, 0, 1, 1, 0], dtype=torch.int32, device=device)
    ids = case.call(probs, params, indices=indices)
    assert ids.tolist() == [1, 0, 1, 1, 0]


# Three classes of probs rows with the same values and different parameters: output
# row i samples probs row (i + 1) % batch, so if a kernel read the parameters of the
# output row instead of the probs row, every class would see another class's filter.
# Class filters, as (top_k, top_p, min_p): {argmax}, {top 3} / {top 4}, {top 2} / all.
_CLASS_PARAMS = {"top_k": [1, 3, TOP_K_ALL], "top_p": [1e-3, 1.0, 0.5], "min_p": [1.0, 0.3, 0.0]}


@pytest.mark.parametrize("case", [c for c in SAMPLERS if c.filters], **by_id)
def test_indices_use_the_parameters_of_the_mapped_row(device, case):
    per_class = 20_000 if is_gpu(device) else 2_000
    batch, vocab = 3 * per_class, 16
    # w_i ~ 0.7**rank with the ranks shuffled, so the favourite token is not token 0
    g = torch.Generator().manual_seed(3)
    row = 0.7 ** torch.randperm(vocab, generator=g).double()
    probs = (row / row.sum()).float().expand(batch, vocab).contiguous().to(device)
    cls = torch.arange(batch) % 3
    arrays = {
        "top_k": torch.tensor(_CLASS_PARAMS["top_k"], dtype=torch.int32)[cls],
        "top_p": torch.tensor(_CLASS_PARAMS["top_p"], dtype=torch.float32)[cls],
        "min_p": torch.tensor(_CLASS_PARAMS["min_p"], dtype=torch.float32)[cls],
    }
    params = Params(**{n: arrays[n] for n in case.filters}).to(device)
    indices = ((torch.arange(batch) + 1) % batch).to(torch.int32)
    gen = torch.Generator(device=device).manual_seed(99)
    ids = case.call(probs, params, indices=indices.to(device), generator=gen).cpu()
    dist = case.expected(probs, params)  # per probs row
    supports = [int((dist[c] > 0).sum()) for c in range(3)]
    assert len(set(supports)) == 3, f"classes must differ: {supports}"
    mapped_class = cls[indices.long()]
    for c in range(3):
        assert_matches_distribution(
            ids[mapped_class == c], dist[c], f"{case.id}: rows mapped to class {c}"
        )


def test_no_filtering_parameters_equal_plain_sampling(device):
    probs = make_probs(300, 700, device)
    plain = OP_CASE["sampling"].expected(probs, Params())
    normalised = probs / probs.sum(-1, keepdim=True)
    for k, p in [(700, 1.0), (TOP_K_ALL, 1.0), (10**6, 1.0)]:
        for case_id in ("top_k_sampling", "joint_sampling", "top_k_first_sampling"):
            got = OP_CASE[case_id].expected(probs, Params(k, p, 0.0))
            assert torch.equal(got > 0, plain > 0)
        assert torch.allclose(sgl_kernel.top_k_renorm_probs(probs, k), normalised, atol=1e-6)
        assert torch.allclose(sgl_kernel.top_p_renorm_probs(probs, p), normalised, atol=1e-6)
    # k >= vocab through a per-row array too
    k_rows = torch.full((300,), TOP_K_ALL, dtype=torch.int32, device=device)
    assert torch.allclose(sgl_kernel.top_k_renorm_probs(probs, k_rows), normalised, atol=1e-6)


def test_top_k_one_and_tiny_top_p_pick_the_most_likely_token(device):
    probs = make_probs(128, 1000, device, ties=False)
    best = probs.argmax(-1).to(torch.int32)
    assert torch.equal(sgl_kernel.top_k_sampling_from_probs(probs, 1), best)
    assert torch.equal(sgl_kernel.top_p_sampling_from_probs(probs, 1e-6), best)
    assert torch.equal(sgl_kernel.min_p_sampling_from_probs(probs, 1.0), best)


# --------------------------------------------------------------------------- invalid rows


def test_rows_without_positive_probability_have_a_defined_result(device):
    vocab = 1000
    probs = make_probs(6, vocab, device)
    probs[1] = 0.0
    probs[3] = float("nan")
    probs[4, :] = float("nan")
    probs[4, 10] = 0.0
    for case in SAMPLERS:
        ids = case.call(probs, Params(50, 0.9, 0.1))
        assert ids[[1, 3, 4]].tolist() == [0, 0, 0], case.id
        assert 0 <= int(ids.min()) and int(ids.max()) < vocab
    renormed_k = sgl_kernel.top_k_renorm_probs(probs, 50)
    renormed_p = sgl_kernel.top_p_renorm_probs(probs, 0.9)
    for renormed in (renormed_k, renormed_p):
        assert torch.equal(renormed[[1, 3, 4]], torch.zeros_like(renormed[[1, 3, 4]]))
        torch.testing.assert_close(
            renormed[[0, 2, 5]].sum(-1).double().cpu(), torch.ones(3, dtype=torch.float64)
        )
    check_result(OP_CASE["top_k_renorm"], renormed_k, probs, Params(top_k=50), "top_k renorm")
    check_result(OP_CASE["top_p_renorm"], renormed_p, probs, Params(top_p=0.9), "top_p renorm")
    masked = sgl_kernel.top_k_mask_logits(torch.log(probs), 50)
    assert bool((masked[3] == float("-inf")).all())
    check_result(OP_CASE["top_k_mask_logits"], masked, torch.log(probs), Params(top_k=50), "mask")


# --------------------------------------------------------------------------- bad input


def _raw(name, *args):
    return getattr(torch.ops.sgl_kernel, name).default(*args)


# (call(P, device), message); P is a (4, 10) probability matrix on the device.
def _ids(n, device):
    return torch.empty(n, dtype=torch.int32, device=device)


BAD_CALLS = [
    pytest.param(
        lambda P, d: _raw("top_p_sampling_from_probs", P.double(), torch.empty(4, dtype=torch.int32, device=d), None, None, 0.9, True, None),
        r"probs must be float32, got float64", id="probs-float64",
    ),
    pytest.param(lambda P, d: sgl_kernel.top_p_sampling_from_probs(P[0], 0.9), r"probs must be 2-D \(batch, vocab\)", id="probs-1d"),
    pytest.param(
        lambda P, d: _raw("top_p_renorm_probs", P.t(), torch.empty(10, 4, device=d), None, 0.9),
        r"probs must be contiguous", id="probs-transposed",
    ),
    pytest.param(lambda P, d: sgl_kernel.top_k_renorm_probs(P[:, :0], 3), r"probs must have vocab size >= 1", id="probs-vocab-0"),
    pytest.param(lambda P, d: sgl_kernel.top_p_sampling_from_probs(P, 0.0), r"top_p_val must be in \(0, 1\], got 0", id="top_p-0"),
    pytest.param(lambda P, d: sgl_kernel.top_p_renorm_probs(P, 1.5), r"top_p_val must be in \(0, 1\], got 1.5", id="top_p-1.5"),
    pytest.param(lambda P, d: sgl_kernel.top_p_renorm_probs(P, float("nan")), r"top_p_val must be in \(0, 1\], got nan", id="top_p-nan"),
    pytest.param(lambda P, d: sgl_kernel.top_k_sampling_from_probs(P, 0), r"top_k_val must be an integer >= 1", id="top_k-0"),
    pytest.param(lambda P, d: sgl_kernel.top_k_mask_logits(P, -1), r"top_k_val must be an integer >= 1", id="top_k-negative"),
    pytest.param(
        lambda P, d: sgl_kernel.top_k_top_p_sampling_from_probs(P, 2.5, 0.9, filter_apply_order="joint"),
        r"top_k(_val)? must be an integer", id="top_k-2.5-joint",
    ),
    pytest.param(lambda P, d: sgl_kernel.top_k_renorm_probs(P, 2.5), r"top_k(_val)? must be an integer", id="top_k-2.5"),
    pytest.param(lambda P, d: sgl_kernel.min_p_sampling_from_probs(P, -0.1), r"min_p_val must be in \[0, 1\], got -0.1", id="min_p-negative"),
    pytest.param(lambda P, d: sgl_kernel.min_p_sampling_from_probs(P, float("nan")), r"min_p_val must be in \[0, 1\], got nan", id="min_p-nan"),
    pytest.param(
        lambda P, d: torch.ops.sgl_kernel.top_k_sampling_from_probs.default(
            P, _ids(4, d), None, torch.ones(4, dtype=torch.int64, device=d), 0, True, None
        ),
        r"maybe_top_k_arr must be int32, got int64", id="raw-top_k-arr-int64",
    ),
    pytest.param(
        lambda P, d: sgl_kernel.top_p_sampling_from_probs(P, torch.ones(3, device=d)),
        r"top_p must have one value per row of probs \(4 rows\), got 3 values", id="top_p-arr-short",
    ),
    pytest.param(
        lambda P, d: sgl_kernel.min_p_sampling_from_probs(P, torch.ones(4, 1, device=d)),
        r"min_p must be a number or a 1-D tensor .* got a 2-D tensor of shape \[4, 1\]", id="min_p-arr-2d",
    ),
    pytest.param(
        lambda P, d: torch.ops.sgl_kernel.top_p_renorm_probs.default(
            P, torch.empty_like(P), torch.ones(4, dtype=torch.float64, device=d), 0.0
        ),
        r"maybe_top_p_arr must be float32, got float64", id="raw-top_p-arr-float64",
    ),
    pytest.param(
        lambda P, d: sgl_kernel.sampling_from_probs(P, torch.tensor([0, 4], dtype=torch.int32, device=d)),
        r"maybe_indices must lie in \[0, 4\), got values in \[0, 4\]", id="indices-too-large",
    ),
    pytest.param(
        lambda P, d: sgl_kernel.sampling_from_probs(P, torch.tensor([-1, 2], dtype=torch.int32, device=d)),
        r"maybe_indices must lie in \[0, 4\), got values in \[-1, 2\]", id="indices-negative",
    ),
    pytest.param(
        lambda P, d: torch.ops.sgl_kernel.sampling_from_probs.default(
            P, _ids(2, d), torch.tensor([0, 1], device=d), True, None
        ),
        r"maybe_indices must be int32, got int64", id="raw-indices-int64",
    ),
    pytest.param(
        lambda P, d: sgl_kernel.top_k_top_p_sampling_from_probs(P, 2, 0.9, filter_apply_order="top_p_first"),
        r"filter_apply_order must be 'top_k_first' or 'joint', got 'top_p_first'", id="filter-order",
    ),
    pytest.param(
        lambda P, d: _raw("sampling_from_probs", P, torch.empty(3, dtype=torch.int32, device=d), None, True, None),
        r"output must be 1-D of length 4, got shape \[3\]", id="output-short",
    ),
    pytest.param(
        lambda P, d: _raw("sampling_from_probs", P, torch.empty(4, dtype=torch.int64, device=d), None, True, None),
        r"output must be int32, got int64", id="output-int64",
    ),
    pytest.param(
        lambda P, d: _raw("top_k_renorm_probs", P, torch.empty(4, 9, device=d), None, 3),
        r"renorm_probs must have the input's shape \[4, 10\], got \[4, 9\]", id="renorm-out-shape",
    ),
    pytest.param(
        lambda P, d: _raw("top_k_mask_logits", P, torch.empty(4, 10, dtype=torch.float16, device=d), None, 3),
        r"mask_logits must be float32, got float16", id="mask-out-float16",
    ),
]  # fmt: skip


@pytest.mark.parametrize("call,message", BAD_CALLS)
def test_bad_input_is_a_clear_error(device, call, message):
    with pytest.raises((RuntimeError, ValueError), match=message):
        call(make_probs(4, 10, device), device)


CROSS_DEVICE_CALLS = [
    pytest.param(
        lambda P: sgl_kernel.top_p_sampling_from_probs(P, torch.ones(4)),
        lambda P: (
            r"top_p must be on the same device as probs " + re.escape(f"({P.device}), got cpu")
        ),
        id="cpu-param",
    ),
    pytest.param(
        lambda P: _raw(
            "sampling_from_probs", P, torch.empty(4, dtype=torch.int32), None, True, None
        ),
        lambda P: r"output must be on the same device as the probabilities",
        id="cpu-output",
    ),
    pytest.param(
        lambda P: sgl_kernel.top_p_sampling_from_probs(P, 0.9, generator=torch.Generator()),
        lambda P: r"[Gg]enerator",
        id="cpu-generator",
    ),
]


@pytest.mark.parametrize("call,message", CROSS_DEVICE_CALLS)
def test_cross_device_arguments_are_a_clear_error(device, call, message):
    if not is_gpu(device):
        pytest.skip("cross-device arguments need a GPU")
    P = make_probs(4, 10, device)
    with pytest.raises((RuntimeError, ValueError), match=message(P)):
        call(P)


def test_check_nan_raises_before_sampling(device):
    probs = make_probs(3, 20, device)
    probs[1, 4] = float("nan")
    for case in SAMPLERS:
        with pytest.raises(ValueError, match=re.escape("probs contains NaN (check_nan=True)")):
            case.call(probs, Params(5, 0.9, 0.1), check_nan=True)
    clean = make_probs(3, 20, device)
    for case in SAMPLERS:
        assert case.call(clean, Params(5, 0.9, 0.1), check_nan=True).shape == (3,)


def test_empty_batch_returns_empty_results(device):
    probs = torch.empty(0, 10, device=device)
    for case in OP_CASES:
        want = (0,) if case.kind == "sample" else (0, 10)
        assert case.call(probs, Params(5, 0.9, 0.1)).shape == want, case.id


def test_aliases_and_exports():
    assert sgl_kernel.top_k_renorm_prob is sgl_kernel.top_k_renorm_probs
    assert sgl_kernel.top_p_renorm_prob is sgl_kernel.top_p_renorm_probs
    for name in sgl_kernel.__all__:
        assert callable(getattr(sgl_kernel, name))
    assert "top_p_sampling_from_probs" in sgl_kernel.__all__
    assert {case.wrapper for case in OP_CASES} <= set(sgl_kernel.__all__)


def test_a_missing_extension_says_how_to_build_it():
    """Importing sgl_kernel without its compiled ops must explain the build, not crash."""
    blocker = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'sgl_kernel.common_ops':\n"
        "            raise ImportError('simulated: not built')\n"
        "sys.meta_path.insert(0, Block())\n"
        "try:\n"
        "    import sgl_kernel\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", blocker], capture_output=True, text=True, check=True
    ).stdout
    assert "not built or does not load (simulated: not built)" in out
    assert "pip install --no-build-isolation -e sgl-kernel" in out
    assert "MTGPU_TARGET=mp_31 python setup_musa.py install" in out
