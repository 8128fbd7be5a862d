// Host binding of the speculative-decoding ops (tree verification with the target
// model's probabilities): argument checks that cost no device sync, the device guard,
// the current stream, a launch error turned into an exception. The kernel and the
// defined results for bad trees are in tree_speculative_sampling.cuh. The CUDA
// spellings below are the ones torchada ports to MUSA (docs/musa.md).
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>
#include <torch/types.h>  // torch::kCUDA

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "sgl_kernel_musa_ops.h"
#include "tree_speculative_sampling.cuh"

namespace {

constexpr const char* kTreeOp = "tree_speculative_sampling_target_only";

// Messages are built from strings only (see sampling.cu: streaming numbers through
// TORCH_CHECK crashed one toolchain).
std::string shape_text(c10::IntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + "]";
}

std::string dtype_text(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return "float32";
    case at::kInt:
      return "int32";
    case at::kLong:
      return "int64";
    case at::kHalf:
      return "float16";
    case at::kBFloat16:
      return "bfloat16";
    case at::kDouble:
      return "float64";
    default:
      return c10::toString(t);
  }
}

// `t` is `dtype`, on the device of `ref`, contiguous, and of shape `sizes` (a size of -1
// matches any size >= 1 in that dimension).
void check_tensor(const char* name, const at::Tensor& t, at::ScalarType dtype,
                  const at::Tensor& ref, std::vector<int64_t> sizes) {
  TORCH_CHECK(!t.is_cpu() && t.device() == ref.device(), kTreeOp, ": ", name,
              " must be on the device of target_probs (", ref.device().str(), "), got ",
              t.device().str());
  TORCH_CHECK(t.scalar_type() == dtype, kTreeOp, ": ", name, " must be ", dtype_text(dtype),
              ", got ", dtype_text(t.scalar_type()));
  bool ok = t.dim() == static_cast<int64_t>(sizes.size());
  for (size_t d = 0; ok && d < sizes.size(); ++d) {
    ok = sizes[d] < 0 ? t.size(d) >= 1 : t.size(d) == sizes[d];
  }
  std::string want = "[";
  for (size_t d = 0; d < sizes.size(); ++d) {
    want += (d ? ", " : "") + (sizes[d] < 0 ? std::string(">=1") : std::to_string(sizes[d]));
  }
  TORCH_CHECK(ok, kTreeOp, ": ", name, " must have shape ", want, "], got ", shape_text(t.sizes()));
  TORCH_CHECK(t.is_contiguous(), kTreeOp, ": ", name, " must be contiguous");
}

}  // namespace

void tree_speculative_sampling_target_only(
    at::Tensor predicts, at::Tensor accept_index, at::Tensor accept_token_num,
    at::Tensor candidates, at::Tensor retrive_index, at::Tensor retrive_next_token,
    at::Tensor retrive_next_sibling, at::Tensor uniform_samples,
    at::Tensor uniform_samples_for_final_sampling, at::Tensor target_probs, at::Tensor draft_probs,
    double threshold_single, double threshold_acc, bool deterministic) {
  (void)deterministic;  // the kernel is deterministic either way
  const at::Tensor& t = target_probs;
  TORCH_CHECK(!t.is_cpu(), kTreeOp, ": target_probs must be on the GPU, got device ",
              t.device().str());
  TORCH_CHECK(t.scalar_type() == at::kFloat, kTreeOp, ": target_probs must be float32, got ",
              dtype_text(t.scalar_type()));
  TORCH_CHECK(t.dim() == 3 && t.size(1) >= 1 && t.size(2) >= 1, kTreeOp,
              ": target_probs must be 3-D (batch, num_draft_tokens >= 1, vocab >= 1), got shape ",
              shape_text(t.sizes()));
  TORCH_CHECK(t.is_contiguous(), kTreeOp, ": target_probs must be contiguous");
  const int64_t batch = t.size(0), num_draft = t.size(1), vocab = t.size(2);
  TORCH_CHECK(num_draft <= sgl_speculative::kMaxDraftTokens, kTreeOp,
              ": target_probs must have at most ", std::to_string(sgl_speculative::kMaxDraftTokens),
              " draft tokens, got shape ", shape_text(t.sizes()));
  TORCH_CHECK(vocab < (int64_t{1} << 31), kTreeOp,
              ": target_probs must have a vocab below 2^31, got shape ", shape_text(t.sizes()));
  check_tensor("draft_probs", draft_probs, at::kFloat, t, {batch, num_draft, vocab});
  check_tensor("candidates", candidates, at::kLong, t, {batch, num_draft});
  check_tensor("retrive_index", retrive_index, at::kLong, t, {batch, num_draft});
  check_tensor("retrive_next_token", retrive_next_token, at::kLong, t, {batch, num_draft});
  check_tensor("retrive_next_sibling", retrive_next_sibling, at::kLong, t, {batch, num_draft});
  check_tensor("uniform_samples", uniform_samples, at::kFloat, t, {batch, num_draft});
  check_tensor("uniform_samples_for_final_sampling", uniform_samples_for_final_sampling, at::kFloat,
               t, {batch});
  check_tensor("accept_index", accept_index, at::kInt, t, {batch, -1});
  check_tensor("accept_token_num", accept_token_num, at::kInt, t, {batch});
  TORCH_CHECK(!predicts.is_cpu() && predicts.device() == t.device(), kTreeOp,
              ": predicts must be on the device of target_probs (", t.device().str(), "), got ",
              predicts.device().str());
  TORCH_CHECK(predicts.scalar_type() == at::kInt, kTreeOp, ": predicts must be int32, got ",
              dtype_text(predicts.scalar_type()));
  TORCH_CHECK(predicts.dim() == 1, kTreeOp, ": predicts must be 1-D, got shape ",
              shape_text(predicts.sizes()));
  TORCH_CHECK(predicts.is_contiguous(), kTreeOp, ": predicts must be contiguous");
  TORCH_CHECK(threshold_single >= 0 && threshold_single <= 1, kTreeOp,
              ": threshold_single must be in [0, 1]");
  TORCH_CHECK(threshold_acc >= 0 && threshold_acc <= 1, kTreeOp,
              ": threshold_acc must be in [0, 1]");
  if (batch == 0) return;
  const c10::cuda::OptionalCUDAGuard guard(t.device());
  const cudaError_t status = sgl_speculative::TreeSpeculativeSamplingTargetOnly(
      predicts.data_ptr<int32_t>(), accept_index.data_ptr<int32_t>(),
      accept_token_num.data_ptr<int32_t>(), candidates.data_ptr<int64_t>(),
      retrive_index.data_ptr<int64_t>(), retrive_next_token.data_ptr<int64_t>(),
      retrive_next_sibling.data_ptr<int64_t>(), uniform_samples.data_ptr<float>(),
      uniform_samples_for_final_sampling.data_ptr<float>(), t.data_ptr<float>(),
      draft_probs.data_ptr<float>(), static_cast<uint32_t>(batch),
      static_cast<uint32_t>(accept_index.size(1)), static_cast<uint32_t>(num_draft),
      static_cast<uint32_t>(vocab), predicts.numel(), static_cast<float>(threshold_single),
      // threshold_acc scales the coin; 0 would make every visited child a take.
      std::fmax(static_cast<float>(threshold_acc), 1e-9f),
      at::cuda::getCurrentCUDAStream(t.get_device()));
  TORCH_CHECK(status == cudaSuccess, kTreeOp,
              ": kernel launch failed: ", cudaGetErrorString(status));
}

// The speculative ops' schemas and GPU impls, added to a TORCH_LIBRARY_EXPAND(sgl_kernel, m)
// block by one line, `register_speculative_ops(m);`. Written outputs are annotated
// Tensor(a!); draft_probs is only read (unlike upstream's kernel, which writes the rejected
// tokens' probabilities into it as scratch). CPU reference and fake: sgl_kernel/
// speculative_reference.py, registered from Python.
void register_speculative_ops(torch::Library& m) {
  m.def(
      "tree_speculative_sampling_target_only(Tensor(a!) predicts, Tensor(b!) accept_index, "
      "Tensor(c!) accept_token_num, Tensor candidates, Tensor retrive_index, "
      "Tensor retrive_next_token, Tensor retrive_next_sibling, Tensor uniform_samples, "
      "Tensor uniform_samples_for_final_sampling, Tensor target_probs, Tensor draft_probs, "
      "float threshold_single, float threshold_acc, bool deterministic) -> ()");
  m.impl("tree_speculative_sampling_target_only", torch::kCUDA,
         &tree_speculative_sampling_target_only);
}
