// One launch that samples every row from its own top-k, top-p and min-p filters with
// randomness keyed by (seed, position, token id): the kernel behind
// sgl_kernel::top_k_top_p_min_p_sampling_from_probs. Our own source, not FlashInfer's.
//
// Per row (one thread block), with w = the row's positive entries (NaN, negatives: 0):
//   1. Level-0 pass: histogram of the float exponents, the row's largest key and its
//      exact total S.
//   2. Up to three more radix levels (8, 8, 7 mantissa bits) find the boundary value tau
//      of the kept prefix of the rank order (descending w, ties by token id): the smallest
//      value whose first token survives top-k (fewer than k tokens above it), top-p (mass
//      above it <= p * S) and min-p (w >= M * min_p). A level stops early when its chosen
//      bin is kept whole.
//   3. Only if top-k or top-p cuts inside a run of equal values: one pass finds the last
//      kept token of that run in token-id order.
//   4. Final pass: among kept tokens, argmin of log(E_i) - log(w_i), E_i = -log(u_i),
//      u_i the seeded uniform of (seed, position, i): Gumbel-max, an exact draw.
//
// Deterministic by construction: the histograms add integers (counts and exact
// mantissa sums, so every mass is exact), the scans and reductions are cub block
// primitives with a fixed order, and the final argmin breaks ties by token id. Nothing
// depends on thread scheduling or on the warp width (no shuffles, no inline PTX, no
// cuda:: functors, no waits between blocks), which keeps it portable to MUSA.
#pragma once

#include <cfloat>
#include <cstdint>
#include <cub/cub.cuh>

namespace sgl_sampling {

constexpr uint32_t kSeededThreads = 1024;
// Copies of each histogram, spread over groups of threads, to cut atomic contention on
// the few exponents a softmax row crowds into. The grouping size is arbitrary (not a
// warp width).
constexpr uint32_t kHistCopies = 4;
constexpr uint32_t kHistGroup = 32;
constexpr uint32_t kHistBins = 256;
// A histogram bin packs (sum of 24-bit mantissa integers) << 20 | token count into 64
// bits: exact for rows of fewer than 2^20 tokens.
constexpr uint32_t kCountBits = 20;
constexpr uint64_t kCountMask = (uint64_t{1} << kCountBits) - 1;
constexpr uint32_t kMaxSeededVocab = (1u << kCountBits) - 1;
constexpr uint32_t kInfKey = 0x7F800000u;  // +inf; keys of finite positive floats are below
constexpr uint32_t kNoBin = 0xFFFFFFFFu;

// The mixer of the Sampler's seeded_uniform (python/sglang/srt/layers/sampler.py),
// as uint64: the same wrapping arithmetic gives the same numbers.
constexpr uint64_t kMixSeed = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kMixPosition = 0xD1B54A32D192ED03ull;
constexpr uint64_t kMixToken = 0x6A09E667F3BCC909ull;
constexpr uint64_t kMix1 = 0xBF58476D1CE4E5B9ull;
constexpr uint64_t kMix2 = 0x94D049BB133111EBull;

// Radix levels over the 31 magnitude bits of a non-negative float.
__device__ __forceinline__ uint32_t level_shift(int level) {
  return level == 0 ? 23u : level == 1 ? 15u : level == 2 ? 7u : 0u;
}
__device__ __forceinline__ uint32_t level_bins(int level) { return level == 3 ? 128u : 256u; }

// The weight's order-preserving key: its bits if it is > 0 (so NaN and negatives are 0).
__device__ __forceinline__ uint32_t weight_key(float x) { return x > 0.f ? __float_as_uint(x) : 0u; }

// A finite positive key's mantissa as an integer: w = mantissa * 2^(max(e, 1) - 150).
__device__ __forceinline__ uint64_t packed_weight(uint32_t key) {
  const uint32_t exponent = key >> 23, fraction = key & 0x7FFFFFu;
  const uint64_t mantissa = exponent ? (fraction | 0x800000u) : fraction;
  return (mantissa << kCountBits) | 1u;
}

// 2^(max(exponent, 1) - 150), built from its bits (a normal double for every exponent).
__device__ __forceinline__ double bin_scale(uint32_t exponent) {
  const int64_t power = static_cast<int64_t>(exponent > 1 ? exponent : 1) - 150;
  return __longlong_as_double((power + 1023) << 52);
}

struct BinTotals {
  uint32_t count;
  double mass;
};

struct MaxKey {
  __device__ __forceinline__ uint32_t operator()(uint32_t a, uint32_t b) const {
    return a > b ? a : b;
  }
};

// A candidate of the final argmin: ties go to the lower token id, so any reduction
// order gives the same winner.
struct Candidate {
  float key;
  uint32_t index;
};

struct MinCandidate {
  __device__ __forceinline__ Candidate operator()(const Candidate& a, const Candidate& b) const {
    if (a.key < b.key) return a;
    if (b.key < a.key) return b;
    return a.index <= b.index ? a : b;
  }
};

// The Sampler's seeded uniform, u = ((x >> 11) + 0.5) / 2^53, returned as
// log(-log(u)) computed in float32 without losing the small E = -log(u) of u near 1.
__device__ __forceinline__ float log_exponential(uint64_t row_base, uint32_t token) {
  uint64_t x = row_base + static_cast<uint64_t>(token) * kMixToken;
  x = (x ^ (x >> 30)) * kMix1;
  x = (x ^ (x >> 27)) * kMix2;
  x = x ^ (x >> 31);
  const uint64_t m = x >> 11;  // u = (2m + 1) / 2^54
  float e;
  if (m < (uint64_t{1} << 52)) {
    e = -logf(static_cast<float>(2 * m + 1) * 0x1p-54f);
  } else {  // 1 - u = (2^54 - 2m - 1) / 2^54, exact as an integer
    e = -log1pf(-static_cast<float>((uint64_t{1} << 54) - 2 * m - 1) * 0x1p-54f);
  }
  return logf(e);
}

template <uint32_t BLOCK>
struct SeededShared {
  union {
    typename cub::BlockScan<uint32_t, BLOCK>::TempStorage count_scan;
    typename cub::BlockReduce<uint32_t, BLOCK>::TempStorage key_reduce;
    typename cub::BlockReduce<Candidate, BLOCK>::TempStorage pick_reduce;
  } temp;
  unsigned long long hist[kHistCopies][kHistBins];
  // Double-buffered inclusive scan of the bins, highest value first.
  uint32_t scan_count[2][kHistBins];
  double scan_mass[2][kHistBins];
  // The search state every thread reads after a barrier.
  uint32_t max_key;
  double total;
  uint32_t chosen_bin;
  uint32_t above_count;  // tokens above the chosen bin
  double above_mass;
  uint32_t bin_count;
  double bin_mass;
  uint32_t tie_cut;  // last kept token id of the boundary value's run
};

template <uint32_t BLOCK>
__device__ __forceinline__ void clear_histograms(SeededShared<BLOCK>& s) {
  for (uint32_t i = threadIdx.x; i < kHistCopies * kHistBins; i += BLOCK) {
    (&s.hist[0][0])[i] = 0ull;
  }
}

template <uint32_t BLOCK>
__device__ __forceinline__ unsigned long long* my_histogram(SeededShared<BLOCK>& s) {
  return s.hist[(threadIdx.x / kHistGroup) % kHistCopies];
}

// Totals of bin `bin` summed over the copies, its mass scaled by `exponent`'s unit.
template <uint32_t BLOCK>
__device__ __forceinline__ BinTotals bin_totals(SeededShared<BLOCK>& s, uint32_t bin,
                                                uint32_t exponent) {
  unsigned long long packed = 0;
  for (uint32_t c = 0; c < kHistCopies; ++c) packed += s.hist[c][bin];
  return {static_cast<uint32_t>(packed & kCountMask),
          static_cast<double>(packed >> kCountBits) * bin_scale(exponent)};
}

// Totals of the bins above each thread's bin (thread t < bins holds bin bins-1-t) and of
// all bins: a Hillis-Steele scan in shared memory, in a fixed order (deterministic sums).
// Cheaper in registers than cub::BlockScan over a (count, double) pair at 1024 threads.
template <uint32_t BLOCK>
__device__ __forceinline__ void scan_bins(SeededShared<BLOCK>& s, uint32_t bins,
                                          const BinTotals& own, BinTotals& above,
                                          BinTotals& all) {
  const uint32_t tid = threadIdx.x;
  int buf = 0;
  if (tid < bins) {
    s.scan_count[0][tid] = own.count;
    s.scan_mass[0][tid] = own.mass;
  }
  __syncthreads();
  for (uint32_t offset = 1; offset < bins; offset <<= 1) {
    if (tid < bins) {
      uint32_t count = s.scan_count[buf][tid];
      double mass = s.scan_mass[buf][tid];
      if (tid >= offset) {
        count += s.scan_count[buf][tid - offset];
        mass += s.scan_mass[buf][tid - offset];
      }
      s.scan_count[buf ^ 1][tid] = count;
      s.scan_mass[buf ^ 1][tid] = mass;
    }
    buf ^= 1;
    __syncthreads();
  }
  above = {0, 0.0};
  if (tid > 0 && tid < bins) above = {s.scan_count[buf][tid - 1], s.scan_mass[buf][tid - 1]};
  all = {s.scan_count[buf][bins - 1], s.scan_mass[buf][bins - 1]};
}

template <uint32_t BLOCK>
__global__ void __launch_bounds__(BLOCK)
    SeededTopKTopPMinPSamplingKernel(const float* __restrict__ probs, int32_t* __restrict__ output,
                                     const int32_t* __restrict__ top_k_arr,
                                     const float* __restrict__ top_p_arr,
                                     const float* __restrict__ min_p_arr,
                                     const int64_t* __restrict__ seed_arr,
                                     const int64_t* __restrict__ position_arr, uint32_t vocab) {
  __shared__ SeededShared<BLOCK> s;
  const uint32_t row = blockIdx.x, tid = threadIdx.x;
  const float* p = probs + static_cast<size_t>(row) * vocab;

  // 1. Exponent histogram, largest key (+inf included, so it can be detected), total.
  clear_histograms(s);
  __syncthreads();
  unsigned long long* hist = my_histogram(s);
  uint32_t local_max = 0;
  for (uint32_t i = tid; i < vocab; i += BLOCK) {
    const uint32_t key = weight_key(p[i]);
    local_max = key > local_max ? key : local_max;
    if (key != 0 && key < kInfKey) atomicAdd(&hist[key >> 23], packed_weight(key));
  }
  const uint32_t block_max = cub::BlockReduce<uint32_t, BLOCK>(s.temp.key_reduce)
                                 .Reduce(local_max, MaxKey());
  if (tid == 0) s.max_key = block_max;
  __syncthreads();

  const int32_t k = top_k_arr[row];
  const float top_p = top_p_arr[row];
  const uint32_t max_key = s.max_key;
  // min-p threshold, rounded to float32 like the reference; NaN or <= 0 never cuts.
  const float min_w = __uint_as_float(max_key) * min_p_arr[row];
  const uint32_t min_key = min_w > 0.f ? __float_as_uint(min_w) : 0u;
  const bool cuts_k = k < static_cast<int64_t>(vocab);
  const bool cuts_p = top_p < 1.f;  // NaN: false

  // 2. Radix descent. The level-0 scan also yields the row total.
  uint32_t prefix = 0, above_count = 0;
  double above_mass = 0, limit = 0;
  uint32_t threshold_key = 0;   // kept: key >= threshold_key ...
  uint32_t tie_key = kNoBin;    // ... except keys == tie_key past the n-th in id order
  uint32_t tie_keep = 0;
  bool nothing_kept = false;
  for (int level = 0; level < 4; ++level) {
    const uint32_t shift = level_shift(level), bins = level_bins(level);
    if (level > 0) {
      __syncthreads();  // everyone has read the previous level's state
      clear_histograms(s);
      __syncthreads();
      const uint32_t high_shift = shift + (level == 3 ? 7u : 8u);
      const uint32_t high = prefix >> high_shift;
      for (uint32_t i = tid; i < vocab; i += BLOCK) {
        const uint32_t key = weight_key(p[i]);
        if (key != 0 && (key >> high_shift) == high && key >= min_key) {
          atomicAdd(&hist[(key >> shift) & (bins - 1)], packed_weight(key));
        }
      }
    }
    if (tid == 0) s.chosen_bin = kNoBin;
    __syncthreads();
    // Thread t holds bin bins-1-t, so the exclusive scan gives the totals above its bin.
    const uint32_t bin = bins - 1 - tid;
    BinTotals own{0, 0.0};
    if (tid < bins) own = bin_totals(s, bin, level == 0 ? bin : (prefix >> 23));
    BinTotals above, all;
    scan_bins(s, bins, own, above, all);
    if (level == 0) {
      // Invalid rows (+inf, or a total that is not a normal float32) sample token 0.
      if (max_key >= kInfKey || !(all.mass >= FLT_MIN) || all.mass > FLT_MAX) {
        nothing_kept = true;
        break;
      }
      limit = static_cast<double>(top_p) * all.mass;
    }
    above.count += above_count;
    above.mass += above_mass;
    const uint32_t bin_top = prefix | (((bin + 1) << shift) - 1);  // largest key in the bin
    const bool qualifies = tid < bins && own.count > 0 && bin_top >= min_key &&
                           static_cast<int64_t>(above.count) < k && !(above.mass > limit && cuts_p);
    if (qualifies) atomicMin(&s.chosen_bin, bin);
    __syncthreads();
    const uint32_t chosen = s.chosen_bin;
    if (chosen == kNoBin) {
      // Level 0: top-k <= 0, top-p < 0 or min-p > 1 cut every token. Deeper: no token of
      // the parent bin reaches min-p, and every token above it is kept.
      nothing_kept = level == 0;
      threshold_key = min_key;
      break;
    }
    if (tid < bins && bin == chosen) {
      s.above_count = above.count;
      s.above_mass = above.mass;
      s.bin_count = own.count;
      s.bin_mass = own.mass;
    }
    __syncthreads();
    prefix |= chosen << shift;
    above_count = s.above_count;
    above_mass = s.above_mass;
    const uint32_t bin_count = s.bin_count;
    const bool whole_by_k = static_cast<int64_t>(above_count) + bin_count <= k || !cuts_k;
    const bool whole_by_p = !cuts_p || !(above_mass + s.bin_mass > limit);
    if (whole_by_k && whole_by_p) {  // the chosen bin is kept whole
      threshold_key = prefix > min_key ? prefix : min_key;
      break;
    }
    if (level == 3) {  // prefix is the boundary value; how many of its run are kept?
      threshold_key = prefix;
      uint64_t keep = bin_count;
      if (cuts_k) keep = min(keep, static_cast<uint64_t>(k - static_cast<int64_t>(above_count)));
      if (cuts_p) {
        // Run members j = 0, 1, ... are kept while above_mass + j * tau <= limit.
        const double room = (limit - above_mass) / static_cast<double>(__uint_as_float(prefix));
        if (room < static_cast<double>(keep)) keep = static_cast<uint64_t>(floor(room)) + 1;
      }
      if (keep < bin_count) {
        tie_key = prefix;
        tie_keep = static_cast<uint32_t>(keep);
      }
    }
  }
  if (!cuts_k && !cuts_p && !nothing_kept) threshold_key = min_key;  // only min-p (or none)
  if (threshold_key == 0) threshold_key = 1;                           // zero weights never

  // 3. The tie_keep-th token of the boundary run, in token-id order: each thread counts
  // the run in its own contiguous slice, one scan finds the slice holding it.
  uint32_t tie_cut = kNoBin;
  if (!nothing_kept && tie_key != kNoBin) {
    const uint32_t slice = (vocab + BLOCK - 1) / BLOCK;
    const uint32_t begin = min(tid * slice, vocab), end = min(begin + slice, vocab);
    uint32_t mine = 0;
    for (uint32_t i = begin; i < end; ++i) mine += weight_key(p[i]) == tie_key;
    uint32_t before;
    if (tid == 0) s.tie_cut = kNoBin;
    __syncthreads();
    cub::BlockScan<uint32_t, BLOCK>(s.temp.count_scan).ExclusiveSum(mine, before);
    if (before < tie_keep && tie_keep <= before + mine) {
      uint32_t seen = before;
      for (uint32_t i = begin; i < end; ++i) {
        if (weight_key(p[i]) == tie_key && ++seen == tie_keep) {
          s.tie_cut = i;
          break;
        }
      }
    }
    __syncthreads();
    tie_cut = s.tie_cut;
  }

  // 4. Gumbel-max over the kept tokens.
  Candidate best{INFINITY, kNoBin};
  if (!nothing_kept) {
    const uint64_t row_base = static_cast<uint64_t>(seed_arr[row]) * kMixSeed +
                              static_cast<uint64_t>(position_arr[row]) * kMixPosition;
    for (uint32_t i = tid; i < vocab; i += BLOCK) {
      const float w = p[i];
      const uint32_t key = weight_key(w);
      if (key < threshold_key || (key == tie_key && i > tie_cut)) continue;
      const Candidate c{log_exponential(row_base, i) - logf(w), i};
      best = MinCandidate()(best, c);
    }
  }
  __syncthreads();
  const Candidate winner =
      cub::BlockReduce<Candidate, BLOCK>(s.temp.pick_reduce).Reduce(best, MinCandidate());
  if (tid == 0) output[row] = winner.index == kNoBin ? 0 : static_cast<int32_t>(winner.index);
}

// Launches one block per row on `stream`; the caller has checked every argument.
inline cudaError_t SeededTopKTopPMinPSampling(const float* probs, int32_t* output,
                                              const int32_t* top_k, const float* top_p,
                                              const float* min_p, const int64_t* seeds,
                                              const int64_t* positions, uint32_t rows,
                                              uint32_t vocab, cudaStream_t stream) {
  SeededTopKTopPMinPSamplingKernel<kSeededThreads><<<rows, kSeededThreads, 0, stream>>>(
      probs, output, top_k, top_p, min_p, seeds, positions, vocab);
  return cudaGetLastError();
}

}  // namespace sgl_sampling
