"""Attach the CPU reference kernels and the fake (meta) kernels to the C++-defined ops.

Imported once by sgl_kernel/__init__.py after the extension has defined the schemas.
Every op writes its outputs in place and returns nothing, so a fake has nothing to
compute or allocate; it runs the op's validation (shapes, dtypes, one device for every
tensor, scalar ranges), so a call that the real kernels reject fails under
FakeTensor / torch.compile tracing and on meta tensors too, with the same message.
Without it, a meta argument next to CPU probabilities would dispatch to a silent no-op.
The ops come from each reference module's OPS (sampling, then speculative decoding).
"""

import functools

import torch

from sgl_kernel import sampling_reference, speculative_reference

REFERENCE_MODULES = (sampling_reference, speculative_reference)


def _fake(validate, *args) -> None:
    validate(*args, check_values=False)  # fake tensors hold no values to range-check


def register_cpu_and_fake_kernels() -> None:
    for module in REFERENCE_MODULES:
        for name, reference in module.OPS.items():
            qualname = f"sgl_kernel::{name}"
            torch.library.impl(qualname, "CPU")(reference)
            torch.library.register_fake(qualname)(functools.partial(_fake, module.VALIDATORS[name]))
