// Declarations of the sgl_kernel sampling ops built for MUSA (and, from the same
// sources, for CUDA). The host bindings and the schemas live in csrc/sampling/sampling.cu. Scalar
// schema types map to C++ as float -> double, int -> int64_t, Tensor? -> std::optional<at::Tensor>,
// Generator? -> std::optional<at::Generator>.
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include <optional>

// The upstream sgl-kernel spelling of TORCH_LIBRARY: the extra level of macro
// expansion lets the namespace itself be a macro.
#define TORCH_LIBRARY_EXPAND(NAME, MODULE) TORCH_LIBRARY(NAME, MODULE)

// Makes the shared object importable as a Python module (`sgl_kernel.common_ops`)
// that registers its ops on import and defines no Python functions of its own.
#define SGL_KERNEL_STRINGIFY_(x) #x
#define SGL_KERNEL_STRINGIFY(x) SGL_KERNEL_STRINGIFY_(x)
#define REGISTER_EXTENSION(NAME)                                                           \
  extern "C" PyObject* PyInit_##NAME() {                                                   \
    static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, SGL_KERNEL_STRINGIFY(NAME), \
                                        nullptr, 0, nullptr};                              \
    return PyModule_Create(&module);                                                       \
  }

// Adds every sampling op's schema and GPU impl to a TORCH_LIBRARY_EXPAND(sgl_kernel, m) block.
void register_sampling_ops(torch::Library& m);

// Renormalisation and masking (no randomness).
void top_k_renorm_probs(at::Tensor probs, at::Tensor renorm_probs,
                        std::optional<at::Tensor> maybe_top_k_arr, int64_t top_k_val);
void top_p_renorm_probs(at::Tensor probs, at::Tensor renorm_probs,
                        std::optional<at::Tensor> maybe_top_p_arr, double top_p_val);
void top_k_mask_logits(at::Tensor logits, at::Tensor mask_logits,
                       std::optional<at::Tensor> maybe_top_k_arr, int64_t top_k_val);

// Sampling (Philox random numbers from `gen`, or the device's default generator).
void sampling_from_probs(at::Tensor probs, at::Tensor output,
                         std::optional<at::Tensor> maybe_indices, bool deterministic,
                         std::optional<at::Generator> gen);
void top_k_sampling_from_probs(at::Tensor probs, at::Tensor output,
                               std::optional<at::Tensor> maybe_indices,
                               std::optional<at::Tensor> maybe_top_k_arr, int64_t top_k_val,
                               bool deterministic, std::optional<at::Generator> gen);
void top_p_sampling_from_probs(at::Tensor probs, at::Tensor output,
                               std::optional<at::Tensor> maybe_indices,
                               std::optional<at::Tensor> maybe_top_p_arr, double top_p_val,
                               bool deterministic, std::optional<at::Generator> gen);
void top_k_top_p_sampling_from_probs(at::Tensor probs, at::Tensor output,
                                     std::optional<at::Tensor> maybe_indices,
                                     std::optional<at::Tensor> maybe_top_k_arr, double top_k_val,
                                     std::optional<at::Tensor> maybe_top_p_arr, double top_p_val,
                                     bool deterministic, std::optional<at::Generator> gen);
void min_p_sampling_from_probs(at::Tensor probs, at::Tensor output,
                               std::optional<at::Tensor> maybe_indices,
                               std::optional<at::Tensor> maybe_min_p_arr, double min_p_val,
                               bool deterministic, std::optional<at::Generator> gen);
// One launch: per-row top-k, top-p and min-p on the original distribution, drawn with
// randomness keyed by (seeds[i], positions[i], token id); no generator (graph-safe).
void top_k_top_p_min_p_sampling_from_probs(at::Tensor probs, at::Tensor output, at::Tensor top_k,
                                           at::Tensor top_p, at::Tensor min_p, at::Tensor seeds,
                                           at::Tensor positions);
// From logits: per-row temperature (<= 0: greedy), the Sampler's non-finite contract, then
// the fused op's filters on the kernel's float32 softmax, keyed by (seeds[i], positions[i]);
// logits float32/float16/bfloat16 with any strides; a filter None cuts no row (without
// top_k and top_p the op makes two launches, not four); positions None: 0.
void top_k_top_p_min_p_sampling_from_logits(at::Tensor logits, at::Tensor output,
                                            at::Tensor temperature, std::optional<at::Tensor> top_k,
                                            std::optional<at::Tensor> top_p,
                                            std::optional<at::Tensor> min_p, at::Tensor seeds,
                                            std::optional<at::Tensor> positions);

// Chain speculative sampling (FlashInfer's ChainSpeculativeSampling): draft tokens of each
// row accepted with probability min(1, target / draft) until the first rejection, then one
// token from the residual max(target - draft, 0) (or the bonus row); -1 pads the rest.
void chain_speculative_sampling(at::Tensor draft_probs, at::Tensor draft_token_ids,
                                at::Tensor target_probs, at::Tensor output_token_ids,
                                at::Tensor output_accepted_token_num,
                                at::Tensor output_emitted_draft_token_num, bool deterministic,
                                std::optional<at::Generator> gen);

// Speculative decoding (csrc/speculative/): schemas and GPU impls added to a
// TORCH_LIBRARY_EXPAND(sgl_kernel, m) block.
void register_speculative_ops(torch::Library& m);

// Tree verification with target probabilities only (upstream SGLang's signature): walks each
// row's draft tree with its coins, writes the accepted tokens and the bonus token into
// predicts, the accepted nodes' retrive_index into accept_index, their count into
// accept_token_num. draft_probs is read, never written.
void tree_speculative_sampling_target_only(
    at::Tensor predicts, at::Tensor accept_index, at::Tensor accept_token_num,
    at::Tensor candidates, at::Tensor retrive_index, at::Tensor retrive_next_token,
    at::Tensor retrive_next_sibling, at::Tensor uniform_samples,
    at::Tensor uniform_samples_for_final_sampling, at::Tensor target_probs, at::Tensor draft_probs,
    double threshold_single, double threshold_acc, bool deterministic);
