"""sgl_kernel: SGLang's kernels; this tree holds the sampling ops of the MUSA backend.

On a Moore Threads GPU (torch_musa installed, ``torch.version.musa`` set) and on CUDA
when this tree's extension is built, the FlashInfer-compatible sampling functions
below run the FlashInfer kernels on the GPU; on CPU tensors the same functions run a
torch-native reference of the same ops.
"""

import importlib.util

import torch  # noqa: F401  (loads libtorch before the extension)

if importlib.util.find_spec("torch_musa") is not None:
    import torch_musa  # noqa: F401  (loads the MUSA runtime the extension links to)

try:
    from sgl_kernel import common_ops  # noqa: F401  (defines torch.ops.sgl_kernel.*)
except ImportError as err:
    raise ImportError(
        "sgl_kernel.common_ops, the compiled sampling ops, is not built or does not load "
        f"({err}). Build it from the repository root with "
        "`pip install --no-build-isolation -e sgl-kernel`, or on MUSA with "
        "`cd sgl-kernel && MTGPU_TARGET=mp_31 python setup_musa.py install` "
        "(mp_22 for MTT S4000); see docs/musa.md."
    ) from err

from sgl_kernel._registration import register_cpu_and_fake_kernels

register_cpu_and_fake_kernels()

from sgl_kernel.musa import (  # noqa: E402  # noqa: E402
    chain_speculative_sampling,
    min_p_sampling_from_probs,
    sampling_from_logits,
    sampling_from_probs,
    softmax,
    top_k_mask_logits,
    top_k_renorm_prob,
    top_k_renorm_probs,
    top_k_sampling_from_probs,
    top_k_top_p_min_p_sampling_from_logits,
    top_k_top_p_min_p_sampling_from_probs,
    top_k_top_p_sampling_from_logits,
    top_k_top_p_sampling_from_probs,
    top_p_renorm_prob,
    top_p_renorm_probs,
    top_p_sampling_from_probs,
)
from sgl_kernel.speculative import tree_speculative_sampling_target_only  # noqa: E402

__all__ = [
    "min_p_sampling_from_probs",
    "sampling_from_probs",
    "top_k_mask_logits",
    "top_k_renorm_prob",
    "top_k_renorm_probs",
    "top_k_sampling_from_probs",
    "top_k_top_p_min_p_sampling_from_logits",
    "top_k_top_p_min_p_sampling_from_probs",
    "top_k_top_p_sampling_from_probs",
    "top_p_renorm_prob",
    "top_p_renorm_probs",
    "top_p_sampling_from_probs",
    # issue 18: FlashInfer's from-logits functions and speculative decoding
    "chain_speculative_sampling",
    "sampling_from_logits",
    "softmax",
    "top_k_top_p_sampling_from_logits",
    "tree_speculative_sampling_target_only",
]
