"""``flashinfer.sampling`` as sgl_kernel provides it: the FlashInfer 0.5.3 sampling
functions this tree implements, under FlashInfer's names. FlashInfer's
``softmax``, ``sampling_from_logits``, ``top_k_top_p_sampling_from_logits`` and
``chain_speculative_sampling`` are not implemented (their tests are deselected)."""

from sgl_kernel import (  # noqa: F401
    min_p_sampling_from_probs,
    sampling_from_probs,
    top_k_mask_logits,
    top_k_renorm_prob,
    top_k_renorm_probs,
    top_k_sampling_from_probs,
    top_k_top_p_sampling_from_probs,
    top_p_renorm_prob,
    top_p_renorm_probs,
    top_p_sampling_from_probs,
)
