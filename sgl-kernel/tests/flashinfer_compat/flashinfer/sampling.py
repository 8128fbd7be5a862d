"""``flashinfer.sampling`` as sgl_kernel provides it: every FlashInfer 0.5.3 sampling
function the suite calls, under FlashInfer's names (softmax, sampling_from_logits and
top_k_top_p_sampling_from_logits are composed from our ops; chain_speculative_sampling
binds FlashInfer's staged kernel)."""

from sgl_kernel import (  # noqa: F401
    chain_speculative_sampling,
    min_p_sampling_from_probs,
    sampling_from_logits,
    sampling_from_probs,
    softmax,
    top_k_mask_logits,
    top_k_renorm_prob,
    top_k_renorm_probs,
    top_k_sampling_from_probs,
    top_k_top_p_sampling_from_logits,
    top_k_top_p_sampling_from_probs,
    top_p_renorm_prob,
    top_p_renorm_probs,
    top_p_sampling_from_probs,
)
