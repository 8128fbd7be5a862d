"""Attach the CPU reference kernels and the fake (meta) kernels to the C++-defined ops.

Imported once by sgl_kernel/__init__.py after the extension has defined the schemas.
Every op writes its outputs in place and returns nothing, so one fake serves all:
under FakeTensor / torch.compile tracing there is nothing to compute or allocate.
"""

import torch

from sgl_kernel.sampling_reference import OPS


def _fake_inplace_op(*args, **kwargs) -> None:
    return None


def register_cpu_and_fake_kernels() -> None:
    for name, reference in OPS.items():
        qualname = f"sgl_kernel::{name}"
        torch.library.impl(qualname, "CPU")(reference)
        torch.library.register_fake(qualname)(_fake_inplace_op)
