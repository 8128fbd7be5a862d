// FlashInfer's own sampling launchers, unpatched, behind a minimal binding: the baseline
// that bench_sampling.py times next to our ops in the same run. Built by the benchmark
// (torch.utils.cpp_extension.load) against the headers of a FlashInfer release:
// 0.5.3 (our pin) as is, 0.7.2.post1 with -DFLASHINFER_072 (its launchers take seed and
// offset arrays and a `valid` output; its top-k renorm and masking moved to multi-block
// radix kernels with their own workspaces, which are not bound here).
// Every call is deterministic=true, like our ops' default, with the Philox seed and offset
// passed in, so the benchmark can advance the offset between calls as our ops do.
#include <ATen/cuda/CUDAContext.h>
#include <torch/extension.h>

#include <flashinfer/sampling.cuh>

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
#ifndef FLASHINFER_072
  m.def("top_k_renorm", &top_k_renorm);
  m.def("top_k_mask", &top_k_mask);
#endif
}
