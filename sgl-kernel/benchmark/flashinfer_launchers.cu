// FlashInfer's own sampling launchers, unpatched, behind a minimal binding: the baseline
// that bench_sampling.py times next to our ops in the same run. Built by the benchmark
// (torch.utils.cpp_extension.load) against the headers of a FlashInfer release:
// 0.5.3 (our pin) as is, 0.7.2.post1 with -DFLASHINFER_072 (its launchers take seed and
// offset arrays and a `valid` output; its top-k renorm and masking moved to multi-block
// radix kernels in topk.cuh, bound below with their 1 MiB zeroed row-state buffer as
// FlashInfer's Python allocates it, next to its AIR top-p renorm (air_top_p.cuh, when the
// include folder has it) and its one-pass sampling from logits).
// Every call is deterministic=true, like our ops' default, with the Philox seed and offset
// passed in, so the benchmark can advance the offset between calls as our ops do.
#include <ATen/cuda/CUDAContext.h>
#include <torch/extension.h>

#include <flashinfer/sampling.cuh>
#if defined(FLASHINFER_072) && __has_include(<flashinfer/air_top_p.cuh>)
#include <flashinfer/air_top_p.cuh>
#define FI_HAS_AIR_TOP_P 1
#endif

namespace fi = flashinfer::sampling;

namespace {

cudaStream_t stream_of(const at::Tensor& t) {
  return at::cuda::getCurrentCUDAStream(t.get_device());
}

void check(cudaError_t status) {
  TORCH_CHECK(status == cudaSuccess, "FlashInfer launcher failed: ", cudaGetErrorString(status));
}

float* f32(const at::Tensor& t) { return t.data_ptr<float>(); }
int32_t* i32(const at::Tensor& t) { return t.data_ptr<int32_t>(); }
uint32_t rows(const at::Tensor& t) { return static_cast<uint32_t>(t.size(0)); }
uint32_t vocab(const at::Tensor& t) { return static_cast<uint32_t>(t.size(1)); }

#ifdef FLASHINFER_072
// 0.7.2 writes whether each row had a valid token.
#define FI_VALID(probs) \
  , torch::empty({(probs).size(0)}, (probs).options().dtype(torch::kBool)).data_ptr<bool>()
#define FI_RNG(seed, offset) \
  nullptr, static_cast<uint64_t>(seed), nullptr, static_cast<uint64_t>(offset)
#else
#define FI_VALID(probs)
#define FI_RNG(seed, offset) static_cast<uint64_t>(seed), static_cast<uint64_t>(offset)
#endif

void sampling(at::Tensor probs, at::Tensor out, int64_t seed, int64_t offset) {
  check(fi::SamplingFromProb<float, int32_t>(f32(probs), i32(out) FI_VALID(probs), nullptr,
                                             rows(probs), vocab(probs), true, FI_RNG(seed, offset),
                                             stream_of(probs)));
}

void top_k_sampling(at::Tensor probs, at::Tensor out, int64_t k, int64_t seed, int64_t offset) {
  check(fi::TopKSamplingFromProb<float, int32_t>(
      f32(probs), i32(out) FI_VALID(probs), nullptr, nullptr, rows(probs), static_cast<uint32_t>(k),
      vocab(probs), true, FI_RNG(seed, offset), stream_of(probs)));
}

void top_p_sampling(at::Tensor probs, at::Tensor out, double p, int64_t seed, int64_t offset) {
  check(fi::TopPSamplingFromProb<float, int32_t>(
      f32(probs), i32(out) FI_VALID(probs), nullptr, nullptr, rows(probs), static_cast<float>(p),
      vocab(probs), true, FI_RNG(seed, offset), stream_of(probs)));
}

void min_p_sampling(at::Tensor probs, at::Tensor out, double m, int64_t seed, int64_t offset) {
  check(fi::MinPSamplingFromProb<float, int32_t>(
      f32(probs), nullptr, i32(out) FI_VALID(probs), nullptr, rows(probs), static_cast<float>(m),
      vocab(probs), true, FI_RNG(seed, offset), stream_of(probs)));
}

void joint_sampling(at::Tensor probs, at::Tensor out, int64_t k, double p, int64_t seed,
                    int64_t offset) {
  check(fi::TopKTopPSamplingFromProb<float, int32_t>(
      f32(probs), nullptr, nullptr, i32(out) FI_VALID(probs), nullptr, rows(probs),
      static_cast<int32_t>(k), static_cast<float>(p), vocab(probs), true, FI_RNG(seed, offset),
      stream_of(probs)));
}

void top_p_renorm(at::Tensor probs, at::Tensor out, double p) {
  check(fi::TopPRenormProb<float>(f32(probs), f32(out), nullptr, rows(probs), static_cast<float>(p),
                                  vocab(probs), stream_of(probs)));
}

#ifdef FLASHINFER_072
// The multi-CTA radix kernels keep per-group state between their blocks in row_states
// (uint8, zeroed once, reset by the kernels themselves at the end of every call).
fi::RadixRowState* row_states_of(const at::Tensor& t) {
  TORCH_CHECK(t.is_cuda() && t.dtype() == torch::kUInt8 && t.numel() >= (1 << 20),
              "row_states must be a CUDA uint8 tensor of at least 1 MiB, zeroed");
  return reinterpret_cast<fi::RadixRowState*>(t.data_ptr<uint8_t>());
}

void radix_top_k_renorm(at::Tensor probs, at::Tensor out, int64_t k, at::Tensor row_states) {
  check(fi::RadixTopKRenormProbMultiCTA<float, int32_t>(
      f32(probs), f32(out), nullptr, rows(probs), static_cast<uint32_t>(k), vocab(probs),
      row_states_of(row_states), true, stream_of(probs)));
}

void radix_top_k_mask_logits(at::Tensor logits, at::Tensor out, int64_t k, at::Tensor row_states) {
  check(fi::RadixTopKMaskLogitsMultiCTA<float, int32_t>(
      f32(logits), f32(out), nullptr, rows(logits), static_cast<uint32_t>(k), vocab(logits),
      row_states_of(row_states), stream_of(logits)));
}

void sampling_from_logits(at::Tensor logits, at::Tensor out, int64_t seed, int64_t offset) {
  check(fi::SamplingFromLogits<float, int32_t>(f32(logits), i32(out), nullptr, rows(logits),
                                               vocab(logits), true, FI_RNG(seed, offset),
                                               stream_of(logits)));
}
#endif

#ifdef FI_HAS_AIR_TOP_P
namespace air = fi::air_top_p;

// Bytes of AIR top-p's workspace for a batch: the parts its launcher carves, in its order.
int64_t air_top_p_workspace_bytes(int64_t batch, int64_t vocab_size) {
  auto align256 = [](size_t x) { return (x + 255) / 256 * 256; };
  const size_t b = static_cast<size_t>(batch);
  const size_t buf = align256(sizeof(float) * air::calcBufLen<float>(vocab_size) * b);
  return static_cast<int64_t>(align256(sizeof(air::Counter<float>) * b) +
                              align256(sizeof(air::HisT<true, float>) * air::NUM_BUCKETS * b) +
                              align256(sizeof(air::IdxT) * air::NUM_BUCKETS * b) + 2 * buf);
}

void air_top_p_renorm(at::Tensor probs, at::Tensor out, double p, at::Tensor workspace) {
  TORCH_CHECK(workspace.numel() >= air_top_p_workspace_bytes(probs.size(0), probs.size(1)),
              "workspace too small for AIR top-p");
  check(air::AirTopPRenormProb<true, float>(f32(probs), f32(out), nullptr, rows(probs),
                                            static_cast<float>(p), vocab(probs),
                                            workspace.data_ptr(), stream_of(probs)));
  check(cudaGetLastError());
}
#endif

#ifndef FLASHINFER_072
void top_k_renorm(at::Tensor probs, at::Tensor out, int64_t k) {
  check(fi::TopKRenormProb<float, int32_t>(f32(probs), f32(out), nullptr, rows(probs),
                                           static_cast<uint32_t>(k), vocab(probs),
                                           stream_of(probs)));
}

void top_k_mask(at::Tensor logits, at::Tensor out, int64_t k) {
  check(fi::TopKMaskLogits<float, int32_t>(f32(logits), f32(out), nullptr, rows(logits),
                                           static_cast<uint32_t>(k), vocab(logits),
                                           stream_of(logits)));
}
#endif

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("sampling", &sampling);
  m.def("top_k_sampling", &top_k_sampling);
  m.def("top_p_sampling", &top_p_sampling);
  m.def("min_p_sampling", &min_p_sampling);
  m.def("joint_sampling", &joint_sampling);
  m.def("top_p_renorm", &top_p_renorm);
#ifdef FLASHINFER_072
  m.def("radix_top_k_renorm", &radix_top_k_renorm);
  m.def("radix_top_k_mask_logits", &radix_top_k_mask_logits);
  m.def("sampling_from_logits", &sampling_from_logits);
#endif
#ifdef FI_HAS_AIR_TOP_P
  m.def("air_top_p_workspace_bytes", &air_top_p_workspace_bytes);
  m.def("air_top_p_renorm", &air_top_p_renorm);
#endif
#ifndef FLASHINFER_072
  m.def("top_k_renorm", &top_k_renorm);
  m.def("top_k_mask", &top_k_mask);
#endif
}
