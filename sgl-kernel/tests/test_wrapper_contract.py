"""The Python wrappers (sgl_kernel.musa) honour FlashInfer 0.5.3's Python contract.

What each wrapper passes to its op is observed through a spy on ``musa._ops``: the
conversions (dtype, contiguity, per-row parameter dtype, indices) happen exactly
when needed, and a contiguous float32 input reaches the op as the caller's own
tensor. Results after a conversion equal the results on the converted input (the
same generator state gives the same samples). Malformed parameter tensors raise
ValueError under FlashInfer's conditions (0-D, more than 1-D, wrong length).
"""

from types import SimpleNamespace

import pytest
import torch

import sgl_kernel
from sgl_kernel import musa, speculative

BATCH, VOCAB = 4, 64


def make_probs(device, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(BATCH, VOCAB, generator=g, dtype=torch.float64) * 2, -1)
    return probs.to(dtype).to(device)


def gen(device, seed=7):
    return torch.Generator(device=device).manual_seed(seed)


class OpSpy:
    """Stands in for torch.ops.sgl_kernel: records each call's arguments, then runs it."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        real = getattr(torch.ops.sgl_kernel, name).default

        def call(*args):
            self.calls.append((name, args))
            return real(*args)

        return SimpleNamespace(default=call)


@pytest.fixture
def spy(monkeypatch):
    s = OpSpy()
    monkeypatch.setattr(musa, "_ops", s)
    return s


# Every wrapper, called with per-row tensors or scalars, and where its op receives
# (probs, per-row parameter arrays by name, indices) in the op's argument list.
# call(f, probs, k, p, m, indices, generator) -> result
WRAPPERS = {
    "top_k_renorm_probs": (lambda x, k, p, m, idx, g: sgl_kernel.top_k_renorm_probs(x, k)),
    "top_p_renorm_probs": (lambda x, k, p, m, idx, g: sgl_kernel.top_p_renorm_probs(x, p)),
    "top_k_mask_logits": (lambda x, k, p, m, idx, g: sgl_kernel.top_k_mask_logits(x, k)),
    "sampling_from_probs": (
        lambda x, k, p, m, idx, g: sgl_kernel.sampling_from_probs(x, idx, generator=g)
    ),
    "top_k_sampling_from_probs": (
        lambda x, k, p, m, idx, g: sgl_kernel.top_k_sampling_from_probs(x, k, idx, generator=g)
    ),
    "top_p_sampling_from_probs": (
        lambda x, k, p, m, idx, g: sgl_kernel.top_p_sampling_from_probs(x, p, idx, generator=g)
    ),
    "min_p_sampling_from_probs": (
        lambda x, k, p, m, idx, g: sgl_kernel.min_p_sampling_from_probs(x, m, idx, generator=g)
    ),
    "joint": (
        lambda x, k, p, m, idx, g: sgl_kernel.top_k_top_p_sampling_from_probs(
            x, k, p, idx, filter_apply_order="joint", generator=g
        )
    ),
    "top_k_first": (
        lambda x, k, p, m, idx, g: sgl_kernel.top_k_top_p_sampling_from_probs(
            x, k, p, idx, filter_apply_order="top_k_first", generator=g
        )
    ),
}
SAMPLING = [name for name in WRAPPERS if "renorm" not in name and "mask" not in name]
# Which parameters each wrapper takes (FlashInfer checks exactly these).
PARAMS = {
    "top_k_renorm_probs": ["top_k"],
    "top_p_renorm_probs": ["top_p"],
    "top_k_mask_logits": ["top_k"],
    "sampling_from_probs": [],
    "top_k_sampling_from_probs": ["top_k"],
    "top_p_sampling_from_probs": ["top_p"],
    "min_p_sampling_from_probs": ["min_p"],
    "joint": ["top_k", "top_p"],
    "top_k_first": ["top_k", "top_p"],
}
PARAM_DTYPE = {"top_k": torch.int32, "top_p": torch.float32, "min_p": torch.float32}


def row_params(device):
    return {
        # 20000 >= vocab keeps every token and fits every integer dtype tested.
        "top_k": torch.tensor([1, 3, 10, 20000], dtype=torch.int32, device=device),
        "top_p": torch.tensor([0.3, 0.9, 1.0, 0.6], dtype=torch.float32, device=device),
        "min_p": torch.tensor([0.0, 0.1, 0.5, 0.9], dtype=torch.float32, device=device),
    }


def run(name, probs, params, indices=None, g=None):
    return WRAPPERS[name](probs, params["top_k"], params["top_p"], params["min_p"], indices, g)


def op_tensors(spy):
    """Every tensor argument the ops received, in call order."""
    return [a for _, args in spy.calls for a in args if isinstance(a, torch.Tensor)]


# ----------------------------------------------------------------------- probs dtype


@pytest.mark.parametrize("name", list(WRAPPERS))
def test_contiguous_float32_probs_reach_the_op_uncopied(device, name, spy):
    probs = make_probs(device)
    run(name, probs, row_params(device), g=gen(device))
    first_args = spy.calls[0][1]
    assert first_args[0] is probs, "a contiguous float32 input must not be copied"


INPUT_FORMS = {
    "float16": lambda p: p.half(),
    "bfloat16": lambda p: p.bfloat16(),
    "float64": lambda p: p.double(),
    "transposed-view": lambda p: p.t().contiguous().t(),
    "padded-slice": lambda p: torch.cat([p, torch.zeros_like(p[:, :5])], 1)[:, :VOCAB],
    "bfloat16-padded-slice": (
        lambda p: torch.cat([p, torch.zeros_like(p[:, :5])], 1)[:, :VOCAB].bfloat16()
    ),
}


@pytest.mark.parametrize("form", list(INPUT_FORMS))
@pytest.mark.parametrize("name", list(WRAPPERS))
def test_converted_probs_give_the_float32_result(device, name, form, spy):
    """Any accepted dtype or strides: the op gets a contiguous float32 copy and the
    result is what the float32 contiguous input gives (same generator state)."""
    base = make_probs(device)
    given = INPUT_FORMS[form](base)
    assert given.dtype != torch.float32 or not given.is_contiguous()
    params = row_params(device)
    got = run(name, given, params, g=gen(device))
    received = spy.calls[0][1][0]
    assert received.dtype == torch.float32 and received.is_contiguous()
    assert received.data_ptr() != given.data_ptr()
    expected = run(name, given.float().contiguous(), params, g=gen(device))
    assert got.dtype == expected.dtype
    assert torch.equal(got, expected)
    if name in ("top_k_renorm_probs", "top_p_renorm_probs", "top_k_mask_logits"):
        assert got.dtype == torch.float32 and got.shape == base.shape


@pytest.mark.parametrize(
    "dtype", [torch.int32, torch.int64, torch.bool, torch.uint8, torch.complex64]
)
@pytest.mark.parametrize("name", list(WRAPPERS))
def test_probs_of_another_dtype_are_rejected_naming_the_argument(device, name, dtype):
    probs = (make_probs(device) * 10).to(dtype)
    arg = "logits" if name == "top_k_mask_logits" else "probs"
    with pytest.raises(TypeError, match=rf"^{arg} must be float16, bfloat16, float32 or float64"):
        run(name, probs, row_params(device), g=gen(device))


@pytest.mark.parametrize("name", list(WRAPPERS))
def test_probs_not_a_matrix_are_rejected(device, name):
    arg = "logits" if name == "top_k_mask_logits" else "probs"
    with pytest.raises(RuntimeError, match=rf"{arg} must be 2-D \(batch, vocab\)"):
        run(name, make_probs(device)[0], row_params(device), g=gen(device))
    with pytest.raises(TypeError, match=rf"{arg} must be a torch.Tensor, got list"):
        run(name, [[0.5, 0.5]], row_params(device), g=gen(device))


# ------------------------------------------------------------- per-row parameters

# The dtypes a caller plausibly passes for each parameter (FlashInfer's own tests pass
# int64 top_k from torch.randint / torch.full and integer top_p / min_p tensors).
PARAM_FORMS = {
    "int64": lambda t: t.to(torch.int64),
    "int16": lambda t: t.to(torch.int16),
    "float32": lambda t: t.float(),
    "float64": lambda t: t.double(),
    "float16": lambda t: t.half(),
    "strided": lambda t: torch.stack([t, t], 1)[:, 0],
}
FORMS_OF = {
    "top_k": ["int64", "int16", "float32", "float64", "strided"],
    "top_p": ["float64", "float16", "strided"],
    "min_p": ["float64", "float16", "strided"],
}
# float16 values that are exact, so the converted tensor equals the reference one.
EXACT_P = {"top_p": [0.25, 0.875, 1.0, 0.5], "min_p": [0.0, 0.125, 0.5, 0.875]}


@pytest.mark.parametrize(
    "name,param,form",
    [(n, p, f) for n, ps in PARAMS.items() for p in ps for f in FORMS_OF[p]],
    ids=lambda v: str(v),
)
def test_parameter_tensors_are_converted_to_the_op_dtype(device, name, param, form, spy):
    params = row_params(device)
    for p, values in EXACT_P.items():
        params[p] = torch.tensor(values, dtype=torch.float32, device=device)
    given = PARAM_FORMS[form](params[param])
    probs = make_probs(device)
    got = run(name, probs, {**params, param: given}, g=gen(device))
    passed = [t for t in op_tensors(spy) if t.dim() == 1 and t.dtype == PARAM_DTYPE[param]]
    assert any(torch.equal(t.cpu(), params[param].cpu()) for t in passed), (
        f"{param} did not reach the op as a contiguous {PARAM_DTYPE[param]} tensor"
    )
    assert all(t.is_contiguous() for t in op_tensors(spy))
    assert torch.equal(got, run(name, probs, params, g=gen(device)))


@pytest.mark.parametrize("name", [n for n, ps in PARAMS.items() if "top_k" in ps])
def test_top_k_beyond_int32_saturates_instead_of_wrapping(device, name, spy):
    """int64 k = 2**32 + 1 would wrap to k = 1 (greedy); it must mean "keep all"."""
    params = row_params(device)
    huge = torch.full((BATCH,), 2**32 + 1, dtype=torch.int64, device=device)
    got = run(name, make_probs(device), {**params, "top_k": huge}, g=gen(device))
    keep_all = torch.full((BATCH,), 2**31 - 1, dtype=torch.int32, device=device)
    assert any(t.dtype == torch.int32 and torch.equal(t, keep_all) for t in op_tensors(spy))
    expected = run(name, make_probs(device), {**params, "top_k": keep_all}, g=gen(device))
    assert torch.equal(got, expected)


MALFORMED = {
    "0-D": (lambda t: t[0], r"got a 0-D tensor"),
    "2-D": (lambda t: t.view(-1, 1), r"got a 2-D tensor of shape \[4, 1\]"),
    "2-D-row-of-vocab": (
        lambda t: t.view(-1, 1).expand(-1, VOCAB),
        r"got a 2-D tensor of shape \[4, 64\]",
    ),
    "too-short": (lambda t: t[:3], r"one value per row of probs \(4 rows\), got 3 values"),
    "too-long": (lambda t: torch.cat([t, t]), r"\(4 rows\), got 8 values"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
@pytest.mark.parametrize(
    "name,param", [(n, p) for n, ps in PARAMS.items() for p in ps], ids=lambda v: str(v)
)
def test_malformed_parameter_tensors_raise_value_error(device, name, param, case):
    params = row_params(device)
    shape, message = MALFORMED[case]
    bad = {**params, param: shape(params[param])}
    with pytest.raises(ValueError, match=rf"^{param} must .*{message}"):
        run(name, make_probs(device), bad, g=gen(device))


@pytest.mark.parametrize(
    "name,param", [(n, p) for n, ps in PARAMS.items() for p in ps], ids=lambda v: str(v)
)
def test_parameter_tensor_on_another_device_raises_value_error(device, name, param):
    """Never a silent host-device copy, and never the meta device's no-op kernel."""
    params = row_params(device)
    other = params[param].to("meta")
    with pytest.raises(ValueError, match=rf"^{param} must be on the same device as probs"):
        run(name, make_probs(device), {**params, param: other}, g=gen(device))


def test_parameter_checks_come_before_the_filter_order_check(device):
    """As in FlashInfer: a malformed top_p is reported even with an unknown order."""
    params = row_params(device)
    with pytest.raises(ValueError, match=r"^top_p must"):
        sgl_kernel.top_k_top_p_sampling_from_probs(
            make_probs(device), params["top_k"], params["top_p"][:2], filter_apply_order="x"
        )
    with pytest.raises(ValueError, match=r"filter_apply_order must be 'top_k_first' or 'joint'"):
        sgl_kernel.top_k_top_p_sampling_from_probs(
            make_probs(device), params["top_k"], params["top_p"], filter_apply_order="x"
        )


@pytest.mark.parametrize("name", list(WRAPPERS))
def test_scalar_parameters_reach_the_op_as_scalars(device, name, spy):
    """Numbers are not turned into tensors: each op gets only probs and its output."""
    scalars = {"top_k": 3, "top_p": 0.5, "min_p": 0.25}
    got = run(name, make_probs(device), scalars, g=gen(device))
    for op, args in spy.calls:
        assert sum(torch.is_tensor(a) for a in args) == 2, op
        numbers = [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
        assert set(numbers) <= {0, 3, 0.5, 0.25} and (numbers or op == "sampling_from_probs")
    assert got.shape == ((BATCH,) if name in SAMPLING else (BATCH, VOCAB))


# ------------------------------------------------------------------------ indices


@pytest.mark.parametrize("form", ["int64", "int32-strided"])
@pytest.mark.parametrize("name", SAMPLING)
def test_indices_are_converted_to_contiguous_int32(device, name, form, spy):
    idx32 = torch.tensor([3, 0, 0, 2, 1, 3], dtype=torch.int32, device=device)
    given = idx32.long() if form == "int64" else torch.stack([idx32, idx32], 1)[:, 1]
    probs, params = make_probs(device), row_params(device)
    got = run(name, probs, params, given, gen(device))
    assert got.shape == (6,)
    passed = [t for t in op_tensors(spy) if t.dtype == torch.int32 and torch.equal(t, idx32)]
    assert passed and all(t.is_contiguous() for t in passed)
    assert torch.equal(got, run(name, probs, params, idx32, gen(device)))


@pytest.mark.parametrize("name", SAMPLING)
def test_int64_indices_out_of_int32_range_stay_invalid(device, name, spy):
    """2**32 must not wrap onto row 0, nor -2**32 onto a valid row."""
    given = torch.tensor([2**32, -(2**32), 1], dtype=torch.int64, device=device)
    probs, params = make_probs(device), row_params(device)
    try:
        run(name, probs, params, given, gen(device))
    except RuntimeError as err:  # the CPU op checks the range; the GPU op does not
        assert "maybe_indices must lie in [0, 4)" in str(err)
    indices_arg = spy.calls[-1][1][2]  # (probs, output, maybe_indices, ...)
    assert indices_arg.dtype == torch.int32
    assert indices_arg.tolist() == [2**31 - 1, -1, 1]


@pytest.mark.parametrize("dtype", [torch.int16, torch.float32, torch.bool])
@pytest.mark.parametrize("name", SAMPLING)
def test_indices_of_another_dtype_are_rejected(device, name, dtype):
    bad = torch.zeros(2, dtype=dtype, device=device)
    with pytest.raises(TypeError, match=r"^indices must be int32 or int64, got "):
        run(name, make_probs(device), row_params(device), bad, gen(device))


# ---------------------------------------------------------------------- check_nan


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", SAMPLING)
def test_check_nan_raises_on_nan_and_passes_clean_rows(device, name, dtype):
    probs = make_probs(device, dtype)
    params = row_params(device)

    def call(x):
        return {
            "sampling_from_probs": lambda: sgl_kernel.sampling_from_probs(x, check_nan=True),
            "top_k_sampling_from_probs": lambda: sgl_kernel.top_k_sampling_from_probs(
                x, params["top_k"], check_nan=True
            ),
            "top_p_sampling_from_probs": lambda: sgl_kernel.top_p_sampling_from_probs(
                x, params["top_p"], check_nan=True
            ),
            "min_p_sampling_from_probs": lambda: sgl_kernel.min_p_sampling_from_probs(
                x, params["min_p"], check_nan=True
            ),
            "joint": lambda: sgl_kernel.top_k_top_p_sampling_from_probs(
                x, params["top_k"], params["top_p"], filter_apply_order="joint", check_nan=True
            ),
            "top_k_first": lambda: sgl_kernel.top_k_top_p_sampling_from_probs(
                x, params["top_k"], params["top_p"], check_nan=True
            ),
        }[name]()

    assert call(probs).shape == (BATCH,)
    probs[2, 5] = float("nan")
    with pytest.raises(ValueError, match=r"probs contains NaN"):
        call(probs)


# ------------------------------------------------------------------------ exports


def test_package_exports_every_wrapper_and_the_flashinfer_aliases():
    names = {
        "min_p_sampling_from_probs",
        "sampling_from_probs",
        "top_k_mask_logits",
        "top_k_renorm_prob",
        "top_k_renorm_probs",
        "top_k_sampling_from_probs",
        "top_k_top_p_min_p_sampling_from_probs",  # the fused seeded op (issue 9)
        "top_k_top_p_min_p_sampling_from_logits",  # from logits (issue 16)
        "top_k_top_p_sampling_from_probs",
        "top_p_renorm_prob",
        "top_p_renorm_probs",
        "top_p_sampling_from_probs",
        # issue 18
        "chain_speculative_sampling",
        "sampling_from_logits",
        "softmax",
        "top_k_top_p_sampling_from_logits",
    }
    assert set(sgl_kernel.__all__) == names | {"tree_speculative_sampling_target_only"}
    for name in names:
        assert getattr(sgl_kernel, name) is getattr(musa, name)
    assert sgl_kernel.tree_speculative_sampling_target_only is (
        speculative.tree_speculative_sampling_target_only
    )
    assert sgl_kernel.top_k_renorm_prob is sgl_kernel.top_k_renorm_probs
    assert sgl_kernel.top_p_renorm_prob is sgl_kernel.top_p_renorm_probs
