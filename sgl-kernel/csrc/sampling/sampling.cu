// Host bindings of the sampling ops over FlashInfer's header-only kernels (the
// pinned 0.5.3 release with our patches from 3rdparty/patches).
//
// Each op validates its arguments (a clear error naming the argument, never a
// crash), sets the device guard, takes Philox state from the generator under its
// lock, launches on the current stream and turns a launch error into an
// exception. The same source builds for CUDA (nvcc) and MUSA (mcc, after
// torchada's porting pass), so the CUDA spellings below are the ones torchada
// rewrites: keep them (see docs/musa.md).
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>
#include <torch/types.h>  // torch::kCUDA

#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <flashinfer/sampling.cuh>
#include <limits>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "logits_sampling.cuh"
#include "seeded_sampling.cuh"
#include "sgl_kernel_musa_ops.h"

namespace {

namespace fi = flashinfer::sampling;

// Philox offsets reserved per output row, as upstream FlashInfer/SGLang reserve
// them: the rejection samplers (top-k, top-p, joint) draw one uniform per round
// and are budgeted 32 rounds; the single-pass samplers draw one. Row i uses
// Philox subsequence i, so rows never share numbers within a call.
constexpr uint64_t kRejectionDrawsPerRow = 32;
constexpr uint64_t kSinglePassDrawsPerRow = 1;

// torch's Python spelling of a dtype (float32, int64, ...), as users write it.
std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return "float32";
    case at::kDouble:
      return "float64";
    case at::kHalf:
      return "float16";
    case at::kBFloat16:
      return "bfloat16";
    case at::kInt:
      return "int32";
    case at::kLong:
      return "int64";
    case at::kShort:
      return "int16";
    case at::kChar:
      return "int8";
    case at::kByte:
      return "uint8";
    case at::kBool:
      return "bool";
    default:
      return c10::toString(t);
  }
}

// Messages are built from strings only, never by streaming a number, shape or device
// through TORCH_CHECK / c10::str. Measured on the device image (2026-11-28: gcc 13.3,
// nvcc 13.0, torch 2.11.0+cu130): a minimal extension built by torch's own
// torch.utils.cpp_extension.load() with default flags segfaults when TORCH_CHECK streams
// an int64_t, a double or t.sizes() -- from a .cpp compiled by gcc as much as from a
// .cu, with -std=c++17 or c++20 -- while strings and t.device() work. The cause is that
// image's toolchain/library pairing, not this build; keep these formatters.
std::string num_str(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);  // like Python's f"{v:g}"
  return buf;
}

std::string int_str(int64_t v) { return std::to_string(v); }

// "[4, 0]"
std::string shape_str(c10::IntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) {
    out += (i ? ", " : "") + std::to_string(sizes[i]);
  }
  return out + "]";
}

void check_gpu_matrix(const char* op, const char* name, const at::Tensor& t) {
  // The dispatcher sends a call here when any argument is on the GPU (CUDA or MUSA).
  TORCH_CHECK(!t.is_cpu(), op, ": ", name, " must be on the GPU, got device ", t.device().str());
  TORCH_CHECK(t.scalar_type() == at::kFloat, op, ": ", name, " must be float32, got ",
              dtype_name(t.scalar_type()));
  TORCH_CHECK(t.dim() == 2, op, ": ", name, " must be 2-D (batch, vocab), got shape ",
              shape_str(t.sizes()));
  TORCH_CHECK(t.size(1) > 0, op, ": ", name, " must have vocab size >= 1, got shape ",
              shape_str(t.sizes()));
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous");
  // The kernels index rows as uint32 row * vocab.
  TORCH_CHECK(t.numel() <= std::numeric_limits<uint32_t>::max(), op, ": ", name,
              " must have fewer than 2^32 elements, got shape ", shape_str(t.sizes()));
}

void check_same_device(const char* op, const char* name, const at::Tensor& t,
                       const at::Tensor& probs) {
  TORCH_CHECK(t.device() == probs.device(), op, ": ", name,
              " must be on the same device as the probabilities (", probs.device().str(), "), got ",
              t.device().str());
}

// A written output of the same shape as the input matrix (renorm and masking).
void check_matrix_output(const char* op, const char* name, const at::Tensor& out,
                         const at::Tensor& in) {
  check_same_device(op, name, out, in);
  TORCH_CHECK(out.scalar_type() == at::kFloat, op, ": ", name, " must be float32, got ",
              dtype_name(out.scalar_type()));
  TORCH_CHECK(out.sizes() == in.sizes(), op, ": ", name, " must have the input's shape ",
              shape_str(in.sizes()), ", got ", shape_str(out.sizes()));
  TORCH_CHECK(out.is_contiguous(), op, ": ", name, " must be contiguous");
}

// A 1-D contiguous tensor of `dtype` with `length` entries on the probabilities' device.
void check_vector(const char* op, const char* name, const at::Tensor& t, at::ScalarType dtype,
                  int64_t length, const at::Tensor& probs) {
  check_same_device(op, name, t, probs);
  TORCH_CHECK(t.scalar_type() == dtype, op, ": ", name, " must be ", dtype_name(dtype), ", got ",
              dtype_name(t.scalar_type()));
  TORCH_CHECK(t.dim() == 1 && t.size(0) == length, op, ": ", name, " must be 1-D of length ",
              int_str(length), ", got shape ", shape_str(t.sizes()));
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous");
}

// The per-row filter and seed arrays of the two fused ops (probs and logits), in the order
// their errors are reported. A filter the logits op was not given is not checked.
void check_fused_row_arrays(const char* op, const std::optional<at::Tensor>& top_k,
                            const std::optional<at::Tensor>& top_p,
                            const std::optional<at::Tensor>& min_p, const at::Tensor& seeds,
                            int64_t rows, const at::Tensor& x) {
  if (top_k.has_value()) check_vector(op, "top_k", *top_k, at::kInt, rows, x);
  if (top_p.has_value()) check_vector(op, "top_p", *top_p, at::kFloat, rows, x);
  if (min_p.has_value()) check_vector(op, "min_p", *min_p, at::kFloat, rows, x);
  check_vector(op, "seeds", seeds, at::kLong, rows, x);
}

// An optional per-row array's data, nullptr when absent (the kernel's "cuts no row").
template <typename T>
const T* data_or_null(const std::optional<at::Tensor>& arr) {
  return arr.has_value() ? arr->data_ptr<T>() : nullptr;
}

// Per-row parameter array (one entry per probability row) or nullptr for "use the scalar".
template <typename T>
T* row_param(const char* op, const char* name, const std::optional<at::Tensor>& arr,
             at::ScalarType dtype, const at::Tensor& probs) {
  if (!arr.has_value()) return nullptr;
  check_vector(op, name, *arr, dtype, probs.size(0), probs);
  return static_cast<T*>(arr->data_ptr());
}

// top_k_val: any integer >= 1; values >= vocab keep every token. Checked and clamped in
// its own type, so no value overflows a cast (2**53 + 1, 2**63 - 1, inf are all handled).
void check_top_k(const char* op, int64_t top_k_val) {
  TORCH_CHECK(top_k_val >= 1, op,
              ": top_k_val must be an integer >= 1 (values >= vocab disable top-k), got ",
              int_str(top_k_val));
}

void check_top_k(const char* op, double top_k_val) {
  TORCH_CHECK(std::isfinite(top_k_val) && top_k_val >= 1 && top_k_val == std::floor(top_k_val), op,
              ": top_k_val must be an integer >= 1 (values >= vocab disable top-k), got ",
              num_str(top_k_val));
}

template <typename T>
uint32_t clamp_top_k(T top_k_val, uint32_t vocab) {
  return top_k_val >= static_cast<T>(vocab) ? vocab : static_cast<uint32_t>(top_k_val);
}

void check_top_p(const char* op, double top_p_val) {
  TORCH_CHECK(top_p_val > 0 && top_p_val <= 1, op, ": top_p_val must be in (0, 1], got ",
              num_str(top_p_val));
}

void check_min_p(const char* op, double min_p_val) {
  TORCH_CHECK(min_p_val >= 0 && min_p_val <= 1, op, ": min_p_val must be in [0, 1], got ",
              num_str(min_p_val));
}

// The validated pointers and sizes every sampling launcher takes.
struct SamplingIO {
  float* probs;
  int32_t* output;
  int32_t* indices;  // nullptr: output row i samples probability row i
  uint32_t rows;     // output rows = blocks launched
  uint32_t vocab;
};

SamplingIO check_sampling_io(const char* op, const at::Tensor& probs, const at::Tensor& output,
                             const std::optional<at::Tensor>& maybe_indices) {
  check_gpu_matrix(op, "probs", probs);
  int64_t rows = probs.size(0);
  int32_t* indices = nullptr;
  if (maybe_indices.has_value()) {
    const at::Tensor& idx = *maybe_indices;
    check_same_device(op, "maybe_indices", idx, probs);
    TORCH_CHECK(idx.scalar_type() == at::kInt, op, ": maybe_indices must be int32, got ",
                dtype_name(idx.scalar_type()));
    TORCH_CHECK(idx.dim() == 1, op, ": maybe_indices must be 1-D, got shape ",
                shape_str(idx.sizes()));
    TORCH_CHECK(idx.is_contiguous(), op, ": maybe_indices must be contiguous");
    rows = idx.size(0);
    if (rows > 0) {
      // One device sync, paid only by callers that pass indices: an index out of
      // range would otherwise be an illegal memory access.
      auto [lo, hi] = at::aminmax(idx);
      int64_t lo_v = lo.item<int64_t>(), hi_v = hi.item<int64_t>();
      TORCH_CHECK(lo_v >= 0 && hi_v < probs.size(0), op, ": maybe_indices must lie in [0, ",
                  int_str(probs.size(0)), "), got values in [", int_str(lo_v), ", ", int_str(hi_v),
                  "]");
    }
    indices = idx.data_ptr<int32_t>();
  }
  check_vector(op, "output", output, at::kInt, rows, probs);
  return {probs.data_ptr<float>(), output.data_ptr<int32_t>(), indices, static_cast<uint32_t>(rows),
          static_cast<uint32_t>(probs.size(1))};
}

// Seed and offset for one launch, advancing the generator by `increment` under its lock.
std::pair<uint64_t, uint64_t> philox_seed_offset(const char* op,
                                                 const std::optional<at::Generator>& gen,
                                                 const at::Tensor& probs, uint64_t increment) {
  auto* impl = at::get_generator_or_default<at::CUDAGeneratorImpl>(
      gen, at::cuda::detail::getDefaultCUDAGenerator(probs.get_device()));
  // torch.Generator(device="cuda") has no device index: it serves any GPU.
  const c10::Device gen_device = impl->device();
  TORCH_CHECK(!gen_device.has_index() || gen_device.index() == probs.device().index(), op,
              ": gen must be a generator of ", probs.device().str(), ", got one of ",
              gen_device.str());
  std::lock_guard<std::mutex> lock(impl->mutex_);
  auto state = impl->philox_cuda_state(increment);
  // Under graph capture the seed lives in device memory and the kernels take
  // scalars: every replay would draw the same numbers.
  TORCH_CHECK(!state.captured_, op, ": sampling during GPU graph capture is not supported");
  return {state.seed_.val, state.offset_.val};
}

void check_launch(const char* op, cudaError_t status) {
  TORCH_CHECK(status == cudaSuccess, op, ": kernel launch failed: ", cudaGetErrorString(status));
}

cudaStream_t current_stream(const at::Tensor& t) {
  return at::cuda::getCurrentCUDAStream(t.get_device());
}

// What every op does after its checks: nothing for an empty batch (`rows` == 0), else
// the device guard of `t`, then launch(stream) on t's current stream, a launch error
// turned into an exception.
template <typename Launch>
void run_on_stream(const char* op, const at::Tensor& t, int64_t rows, Launch launch) {
  if (rows == 0) return;
  const c10::cuda::OptionalCUDAGuard guard(t.device());
  check_launch(op, launch(current_stream(t)));
}

// A filter op (renormalisation, masking): launch(in, out, rows, vocab, stream).
template <typename Launch>
void run_filter(const char* op, const at::Tensor& in, const at::Tensor& out, Launch launch) {
  run_on_stream(op, in, in.size(0), [&](cudaStream_t stream) {
    return launch(in.data_ptr<float>(), out.data_ptr<float>(), static_cast<uint32_t>(in.size(0)),
                  static_cast<uint32_t>(in.size(1)), stream);
  });
}

void check_filter_io(const char* op, const char* in_name, const char* out_name,
                     const at::Tensor& in, const at::Tensor& out) {
  check_gpu_matrix(op, in_name, in);
  check_matrix_output(op, out_name, out, in);
}

// A FlashInfer sampling op: `draws_per_row` Philox numbers per output row taken from the
// generator, then launch(seed, offset, stream).
template <typename Launch>
void run_sampling(const char* op, const SamplingIO& io, const at::Tensor& probs,
                  const std::optional<at::Generator>& gen, uint64_t draws_per_row, Launch launch) {
  run_on_stream(op, probs, io.rows, [&](cudaStream_t stream) {
    auto [seed, offset] = philox_seed_offset(op, gen, probs, draws_per_row * io.rows);
    return launch(seed, offset, stream);
  });
}

// Multiprocessors of `device`, read once per device (the split of launches 1 and 2).
int multiprocessor_count(int device) {
  static std::array<std::atomic<int>, 64> counts{};
  if (device < 0 || device >= static_cast<int>(counts.size())) return 1;
  int n = counts[device].load(std::memory_order_relaxed);
  if (n == 0) {
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || n < 1)
      n = 1;
    counts[device].store(n, std::memory_order_relaxed);
  }
  return n;
}

}  // namespace

void top_k_renorm_probs(at::Tensor probs, at::Tensor renorm_probs,
                        std::optional<at::Tensor> maybe_top_k_arr, int64_t top_k_val) {
  constexpr const char* op = "top_k_renorm_probs";
  check_filter_io(op, "probs", "renorm_probs", probs, renorm_probs);
  auto* top_k_arr = row_param<int32_t>(op, "maybe_top_k_arr", maybe_top_k_arr, at::kInt, probs);
  if (top_k_arr == nullptr) check_top_k(op, top_k_val);
  run_filter(op, probs, renorm_probs,
             [&](float* in, float* out, uint32_t rows, uint32_t vocab, cudaStream_t stream) {
               return fi::TopKRenormProb<float, int32_t>(
                   in, out, top_k_arr, rows, top_k_arr ? 0 : clamp_top_k(top_k_val, vocab), vocab,
                   stream);
             });
}

void top_p_renorm_probs(at::Tensor probs, at::Tensor renorm_probs,
                        std::optional<at::Tensor> maybe_top_p_arr, double top_p_val) {
  constexpr const char* op = "top_p_renorm_probs";
  check_filter_io(op, "probs", "renorm_probs", probs, renorm_probs);
  auto* top_p_arr = row_param<float>(op, "maybe_top_p_arr", maybe_top_p_arr, at::kFloat, probs);
  if (top_p_arr == nullptr) check_top_p(op, top_p_val);
  run_filter(op, probs, renorm_probs,
             [&](float* in, float* out, uint32_t rows, uint32_t vocab, cudaStream_t stream) {
               return fi::TopPRenormProb<float>(in, out, top_p_arr, rows,
                                                static_cast<float>(top_p_val), vocab, stream);
             });
}

void top_k_mask_logits(at::Tensor logits, at::Tensor mask_logits,
                       std::optional<at::Tensor> maybe_top_k_arr, int64_t top_k_val) {
  constexpr const char* op = "top_k_mask_logits";
  check_filter_io(op, "logits", "mask_logits", logits, mask_logits);
  auto* top_k_arr = row_param<int32_t>(op, "maybe_top_k_arr", maybe_top_k_arr, at::kInt, logits);
  if (top_k_arr == nullptr) check_top_k(op, top_k_val);
  run_filter(op, logits, mask_logits,
             [&](float* in, float* out, uint32_t rows, uint32_t vocab, cudaStream_t stream) {
               return fi::TopKMaskLogits<float, int32_t>(
                   in, out, top_k_arr, rows, top_k_arr ? 0 : clamp_top_k(top_k_val, vocab), vocab,
                   stream);
             });
}

void sampling_from_probs(at::Tensor probs, at::Tensor output,
                         std::optional<at::Tensor> maybe_indices, bool deterministic,
                         std::optional<at::Generator> gen) {
  constexpr const char* op = "sampling_from_probs";
  const SamplingIO io = check_sampling_io(op, probs, output, maybe_indices);
  run_sampling(op, io, probs, gen, kSinglePassDrawsPerRow,
               [&](uint64_t seed, uint64_t offset, cudaStream_t stream) {
                 return fi::SamplingFromProb<float, int32_t>(io.probs, io.output, io.indices,
                                                             io.rows, io.vocab, deterministic, seed,
                                                             offset, stream);
               });
}

void top_k_sampling_from_probs(at::Tensor probs, at::Tensor output,
                               std::optional<at::Tensor> maybe_indices,
                               std::optional<at::Tensor> maybe_top_k_arr, int64_t top_k_val,
                               bool deterministic, std::optional<at::Generator> gen) {
  constexpr const char* op = "top_k_sampling_from_probs";
  const SamplingIO io = check_sampling_io(op, probs, output, maybe_indices);
  auto* top_k_arr = row_param<int32_t>(op, "maybe_top_k_arr", maybe_top_k_arr, at::kInt, probs);
  if (top_k_arr == nullptr) check_top_k(op, top_k_val);
  run_sampling(op, io, probs, gen, kRejectionDrawsPerRow,
               [&](uint64_t seed, uint64_t offset, cudaStream_t stream) {
                 return fi::TopKSamplingFromProb<float, int32_t>(
                     io.probs, io.output, io.indices, top_k_arr, io.rows,
                     top_k_arr ? 0 : clamp_top_k(top_k_val, io.vocab), io.vocab, deterministic,
                     seed, offset, stream);
               });
}

void top_p_sampling_from_probs(at::Tensor probs, at::Tensor output,
                               std::optional<at::Tensor> maybe_indices,
                               std::optional<at::Tensor> maybe_top_p_arr, double top_p_val,
                               bool deterministic, std::optional<at::Generator> gen) {
  constexpr const char* op = "top_p_sampling_from_probs";
  const SamplingIO io = check_sampling_io(op, probs, output, maybe_indices);
  auto* top_p_arr = row_param<float>(op, "maybe_top_p_arr", maybe_top_p_arr, at::kFloat, probs);
  if (top_p_arr == nullptr) check_top_p(op, top_p_val);
  run_sampling(op, io, probs, gen, kRejectionDrawsPerRow,
               [&](uint64_t seed, uint64_t offset, cudaStream_t stream) {
                 return fi::TopPSamplingFromProb<float, int32_t>(
                     io.probs, io.output, io.indices, top_p_arr, io.rows,
                     static_cast<float>(top_p_val), io.vocab, deterministic, seed, offset, stream);
               });
}

void top_k_top_p_sampling_from_probs(at::Tensor probs, at::Tensor output,
                                     std::optional<at::Tensor> maybe_indices,
                                     std::optional<at::Tensor> maybe_top_k_arr, double top_k_val,
                                     std::optional<at::Tensor> maybe_top_p_arr, double top_p_val,
                                     bool deterministic, std::optional<at::Generator> gen) {
  constexpr const char* op = "top_k_top_p_sampling_from_probs";
  const SamplingIO io = check_sampling_io(op, probs, output, maybe_indices);
  auto* top_k_arr = row_param<int32_t>(op, "maybe_top_k_arr", maybe_top_k_arr, at::kInt, probs);
  auto* top_p_arr = row_param<float>(op, "maybe_top_p_arr", maybe_top_p_arr, at::kFloat, probs);
  if (top_k_arr == nullptr) check_top_k(op, top_k_val);
  if (top_p_arr == nullptr) check_top_p(op, top_p_val);
  run_sampling(op, io, probs, gen, kRejectionDrawsPerRow,
               [&](uint64_t seed, uint64_t offset, cudaStream_t stream) {
                 const int32_t top_k =
                     top_k_arr ? 0 : static_cast<int32_t>(clamp_top_k(top_k_val, io.vocab));
                 return fi::TopKTopPSamplingFromProb<float, int32_t>(
                     io.probs, top_k_arr, top_p_arr, io.output, io.indices, io.rows, top_k,
                     static_cast<float>(top_p_val), io.vocab, deterministic, seed, offset, stream);
               });
}

void min_p_sampling_from_probs(at::Tensor probs, at::Tensor output,
                               std::optional<at::Tensor> maybe_indices,
                               std::optional<at::Tensor> maybe_min_p_arr, double min_p_val,
                               bool deterministic, std::optional<at::Generator> gen) {
  constexpr const char* op = "min_p_sampling_from_probs";
  const SamplingIO io = check_sampling_io(op, probs, output, maybe_indices);
  auto* min_p_arr = row_param<float>(op, "maybe_min_p_arr", maybe_min_p_arr, at::kFloat, probs);
  if (min_p_arr == nullptr) check_min_p(op, min_p_val);
  run_sampling(op, io, probs, gen, kSinglePassDrawsPerRow,
               [&](uint64_t seed, uint64_t offset, cudaStream_t stream) {
                 return fi::MinPSamplingFromProb<float, int32_t>(
                     io.probs, min_p_arr, io.output, io.indices, io.rows,
                     static_cast<float>(min_p_val), io.vocab, deterministic, seed, offset, stream);
               });
}

void top_k_top_p_min_p_sampling_from_probs(at::Tensor probs, at::Tensor output, at::Tensor top_k,
                                           at::Tensor top_p, at::Tensor min_p, at::Tensor seeds,
                                           at::Tensor positions) {
  constexpr const char* op = "top_k_top_p_min_p_sampling_from_probs";
  check_gpu_matrix(op, "probs", probs);
  TORCH_CHECK(probs.size(1) <= sgl_sampling::kMaxSeededVocab, op,
              ": probs must have a vocab size below 2^20 (the kernel sums masses exactly in 32 "
              "bits), got shape ",
              shape_str(probs.sizes()));
  const int64_t rows = probs.size(0);
  check_vector(op, "output", output, at::kInt, rows, probs);
  check_fused_row_arrays(op, top_k, top_p, min_p, seeds, rows, probs);
  check_vector(op, "positions", positions, at::kLong, rows, probs);
  // No generator: the randomness is in `seeds`, device memory, so a captured graph
  // replays with whatever seeds and positions the tensors hold at replay time.
  run_on_stream(op, probs, rows, [&](cudaStream_t stream) {
    return sgl_sampling::SeededTopKTopPMinPSampling(
        probs.data_ptr<float>(), output.data_ptr<int32_t>(), top_k.data_ptr<int32_t>(),
        top_p.data_ptr<float>(), min_p.data_ptr<float>(), seeds.data_ptr<int64_t>(),
        positions.data_ptr<int64_t>(), static_cast<uint32_t>(rows),
        static_cast<uint32_t>(probs.size(1)), stream);
  });
}

void top_k_top_p_min_p_sampling_from_logits(at::Tensor logits, at::Tensor output,
                                            at::Tensor temperature, std::optional<at::Tensor> top_k,
                                            std::optional<at::Tensor> top_p,
                                            std::optional<at::Tensor> min_p, at::Tensor seeds,
                                            std::optional<at::Tensor> positions) {
  constexpr const char* op = "top_k_top_p_min_p_sampling_from_logits";
  TORCH_CHECK(!logits.is_cpu(), op, ": logits must be on the GPU, got device ",
              logits.device().str());
  const at::ScalarType dtype = logits.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16, op,
              ": logits must be float32, float16 or bfloat16, got ", dtype_name(dtype));
  TORCH_CHECK(logits.dim() == 2, op, ": logits must be 2-D (batch, vocab), got shape ",
              shape_str(logits.sizes()));
  TORCH_CHECK(logits.size(1) > 0 && logits.size(1) <= sgl_sampling::kMaxSeededVocab, op,
              ": logits must have a vocab size in [1, 2^20) (the kernel sums masses exactly in 32 "
              "bits), got shape ",
              shape_str(logits.sizes()));
  const int64_t rows = logits.size(0);
  TORCH_CHECK(rows <= std::numeric_limits<int32_t>::max(), op,
              ": logits must have fewer than 2^31 rows, got shape ", shape_str(logits.sizes()));
  check_vector(op, "output", output, at::kInt, rows, logits);
  check_vector(op, "temperature", temperature, at::kFloat, rows, logits);
  check_fused_row_arrays(op, top_k, top_p, min_p, seeds, rows, logits);
  if (positions.has_value()) check_vector(op, "positions", *positions, at::kLong, rows, logits);
  // Logits are read where they are: any strides, no copy.
  run_on_stream(op, logits, rows, [&](cudaStream_t stream) {
    const uint32_t vocab = static_cast<uint32_t>(logits.size(1));
    const int multiprocessors = multiprocessor_count(logits.get_device());
    const uint32_t chunks =
        sgl_sampling::logits_chunks(static_cast<uint32_t>(rows), vocab, multiprocessors);
    const at::Tensor workspace =
        at::empty({static_cast<int64_t>(sgl_sampling::logits_workspace_bytes(rows, chunks))},
                  logits.options().dtype(at::kByte));
    auto launch = [&](auto typed) {
      using T = decltype(typed);
      sgl_sampling::LogitsArgs<T> args{};
      args.logits = static_cast<const T*>(logits.data_ptr());
      args.row_stride = logits.stride(0);
      args.col_stride = logits.stride(1);
      args.output = output.data_ptr<int32_t>();
      args.temperature = temperature.data_ptr<float>();
      args.top_k = data_or_null<int32_t>(top_k);
      args.top_p = data_or_null<float>(top_p);
      args.min_p = data_or_null<float>(min_p);
      args.seeds = seeds.data_ptr<int64_t>();
      args.positions = positions.has_value() ? positions->data_ptr<int64_t>() : nullptr;
      args.vocab = vocab;
      args.chunks = chunks;
      args.split_select =
          sgl_sampling::logits_split_select(static_cast<uint32_t>(rows), multiprocessors);
      return sgl_sampling::TopKTopPMinPSamplingFromLogits<T>(args, static_cast<uint32_t>(rows),
                                                             workspace.data_ptr(), stream);
    };
    if (dtype == at::kHalf) return launch(c10::Half{});
    if (dtype == at::kBFloat16) return launch(c10::BFloat16{});
    return launch(float{});
  });
}

void chain_speculative_sampling(at::Tensor draft_probs, at::Tensor draft_token_ids,
                                at::Tensor target_probs, at::Tensor output_token_ids,
                                at::Tensor output_accepted_token_num,
                                at::Tensor output_emitted_draft_token_num, bool deterministic,
                                std::optional<at::Generator> gen) {
  constexpr const char* op = "chain_speculative_sampling";
  TORCH_CHECK(!draft_probs.is_cpu(), op, ": draft_probs must be on the GPU, got device ",
              draft_probs.device().str());
  TORCH_CHECK(draft_probs.scalar_type() == at::kFloat, op, ": draft_probs must be float32, got ",
              dtype_name(draft_probs.scalar_type()));
  TORCH_CHECK(draft_probs.dim() == 3 && draft_probs.size(2) >= 1, op,
              ": draft_probs must be 3-D (batch, num_speculate_tokens, vocab >= 1), got shape ",
              shape_str(draft_probs.sizes()));
  TORCH_CHECK(draft_probs.is_contiguous(), op, ": draft_probs must be contiguous");
  const int64_t batch = draft_probs.size(0), n = draft_probs.size(1), vocab = draft_probs.size(2);
  const std::vector<int64_t> target_shape{batch, n + 1, vocab};
  check_same_device(op, "target_probs", target_probs, draft_probs);
  TORCH_CHECK(target_probs.scalar_type() == at::kFloat, op, ": target_probs must be float32, got ",
              dtype_name(target_probs.scalar_type()));
  TORCH_CHECK(target_probs.sizes() == c10::IntArrayRef(target_shape), op,
              ": target_probs must have shape ", shape_str(target_shape), ", got ",
              shape_str(target_probs.sizes()));
  TORCH_CHECK(target_probs.is_contiguous(), op, ": target_probs must be contiguous");
  // The kernel indexes rows as uint32 (row * (n + 1) + i) * vocab.
  TORCH_CHECK(target_probs.numel() <= std::numeric_limits<uint32_t>::max(), op,
              ": target_probs must have fewer than 2^32 elements, got shape ",
              shape_str(target_probs.sizes()));
  const std::vector<int64_t> ids_shape{batch, n}, out_shape{batch, n + 1};
  for (auto [name, t, shape] :
       {std::make_tuple("draft_token_ids", &draft_token_ids, &ids_shape),
        std::make_tuple("output_token_ids", &output_token_ids, &out_shape)}) {
    check_same_device(op, name, *t, draft_probs);
    TORCH_CHECK(t->scalar_type() == at::kInt, op, ": ", name, " must be int32, got ",
                dtype_name(t->scalar_type()));
    TORCH_CHECK(t->sizes() == c10::IntArrayRef(*shape), op, ": ", name, " must have shape ",
                shape_str(*shape), ", got ", shape_str(t->sizes()));
    TORCH_CHECK(t->is_contiguous(), op, ": ", name, " must be contiguous");
  }
  check_vector(op, "output_accepted_token_num", output_accepted_token_num, at::kInt, batch,
               draft_probs);
  check_vector(op, "output_emitted_draft_token_num", output_emitted_draft_token_num, at::kInt,
               batch, draft_probs);
  if (draft_token_ids.numel() > 0) {
    // One device sync: a token id out of range would be an illegal memory access.
    auto [lo, hi] = at::aminmax(draft_token_ids);
    const int64_t lo_v = lo.item<int64_t>(), hi_v = hi.item<int64_t>();
    TORCH_CHECK(lo_v >= 0 && hi_v < vocab, op, ": draft_token_ids must lie in [0, ", int_str(vocab),
                "), got values in [", int_str(lo_v), ", ", int_str(hi_v), "]");
  }
  // One uniform per draft token and one for the final draw, per row (FlashInfer's budget).
  run_on_stream(op, draft_probs, batch, [&](cudaStream_t stream) {
    auto [seed, offset] =
        philox_seed_offset(op, gen, draft_probs, static_cast<uint64_t>(batch * (n + 1)));
    return fi::ChainSpeculativeSampling<float, int32_t>(
        draft_probs.data_ptr<float>(), draft_token_ids.data_ptr<int32_t>(),
        target_probs.data_ptr<float>(), output_token_ids.data_ptr<int32_t>(),
        output_accepted_token_num.data_ptr<int32_t>(),
        output_emitted_draft_token_num.data_ptr<int32_t>(), static_cast<uint32_t>(batch),
        static_cast<uint32_t>(n), static_cast<uint32_t>(vocab), deterministic, seed, offset,
        stream);
  });
}

// The sampling ops' schemas and GPU impls, added to a TORCH_LIBRARY_EXPAND(sgl_kernel, m)
// block by one line, `register_sampling_ops(m);` (ours in common_extension_musa.cc, or
// upstream's MUSA registration file). Written outputs are annotated Tensor(a!) so the
// dispatcher and torch.compile know they are mutated. The impls are registered under
// torch::kCUDA, which torchada ports to the MUSA key (PrivateUse1); the CPU reference
// and the fakes are registered from Python (sgl_kernel/_registration.py).
void register_sampling_ops(torch::Library& m) {
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

  m.def(
      "top_k_top_p_min_p_sampling_from_probs(Tensor probs, Tensor(a!) output, Tensor top_k, "
      "Tensor top_p, Tensor min_p, Tensor seeds, Tensor positions) -> ()");
  m.impl("top_k_top_p_min_p_sampling_from_probs", torch::kCUDA,
         &top_k_top_p_min_p_sampling_from_probs);

  m.def(
      "top_k_top_p_min_p_sampling_from_logits(Tensor logits, Tensor(a!) output, Tensor "
      "temperature, Tensor? top_k, Tensor? top_p, Tensor? min_p, Tensor seeds, Tensor? "
      "positions) -> ()");
  m.impl("top_k_top_p_min_p_sampling_from_logits", torch::kCUDA,
         &top_k_top_p_min_p_sampling_from_logits);

  m.def(
      "chain_speculative_sampling(Tensor draft_probs, Tensor draft_token_ids, "
      "Tensor target_probs, Tensor(a!) output_token_ids, Tensor(b!) output_accepted_token_num, "
      "Tensor(c!) output_emitted_draft_token_num, bool deterministic, Generator? gen) -> ()");
  m.impl("chain_speculative_sampling", torch::kCUDA, &chain_speculative_sampling);
}
