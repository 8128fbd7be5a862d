// Registers the sgl_kernel ops of the MUSA build (the CUDA build of the same tree
// uses this file too). One def + impl per op; the schema is the contract that the
// Python wrappers, the CPU reference and the fake implementations follow.
// Written outputs are annotated Tensor(a!) so the dispatcher and torch.compile
// know they are mutated.
//
// The GPU impl is registered under torch::kCUDA, which torchada ports to the MUSA
// key (PrivateUse1); the CPU reference and the fakes are registered from Python
// (sgl_kernel/_reference.py, sgl_kernel/_fake.py).
#include <Python.h>
#include <torch/types.h>  // torch::kCUDA

#include "sgl_kernel_musa_ops.h"

TORCH_LIBRARY_EXPAND(sgl_kernel, m) {
  m.def(
      "top_k_renorm_probs(Tensor probs, Tensor(a!) renorm_probs, Tensor? maybe_top_k_arr, "
      "int top_k_val) -> ()");
  m.impl("top_k_renorm_probs", torch::kCUDA, &top_k_renorm_probs);

  m.def(
      "top_p_renorm_probs(Tensor probs, Tensor(a!) renorm_probs, Tensor? maybe_top_p_arr, "
      "float top_p_val) -> ()");
  m.impl("top_p_renorm_probs", torch::kCUDA, &top_p_renorm_probs);

  m.def(
      "top_k_mask_logits(Tensor logits, Tensor(a!) mask_logits, Tensor? maybe_top_k_arr, "
      "int top_k_val) -> ()");
  m.impl("top_k_mask_logits", torch::kCUDA, &top_k_mask_logits);

  m.def(
      "sampling_from_probs(Tensor probs, Tensor(a!) output, Tensor? maybe_indices, "
      "bool deterministic, Generator? gen) -> ()");
  m.impl("sampling_from_probs", torch::kCUDA, &sampling_from_probs);

  m.def(
      "top_k_sampling_from_probs(Tensor probs, Tensor(a!) output, Tensor? maybe_indices, "
      "Tensor? maybe_top_k_arr, int top_k_val, bool deterministic, Generator? gen) -> ()");
  m.impl("top_k_sampling_from_probs", torch::kCUDA, &top_k_sampling_from_probs);

  m.def(
      "top_p_sampling_from_probs(Tensor probs, Tensor(a!) output, Tensor? maybe_indices, "
      "Tensor? maybe_top_p_arr, float top_p_val, bool deterministic, Generator? gen) -> ()");
  m.impl("top_p_sampling_from_probs", torch::kCUDA, &top_p_sampling_from_probs);

  m.def(
      "top_k_top_p_sampling_from_probs(Tensor probs, Tensor(a!) output, Tensor? maybe_indices, "
      "Tensor? maybe_top_k_arr, float top_k_val, Tensor? maybe_top_p_arr, float top_p_val, "
      "bool deterministic, Generator? gen) -> ()");
  m.impl("top_k_top_p_sampling_from_probs", torch::kCUDA, &top_k_top_p_sampling_from_probs);

  m.def(
      "min_p_sampling_from_probs(Tensor probs, Tensor(a!) output, Tensor? maybe_indices, "
      "Tensor? maybe_min_p_arr, float min_p_val, bool deterministic, Generator? gen) -> ()");
  m.impl("min_p_sampling_from_probs", torch::kCUDA, &min_p_sampling_from_probs);
}

REGISTER_EXTENSION(common_ops)
