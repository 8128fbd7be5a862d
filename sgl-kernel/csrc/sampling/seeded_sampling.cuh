// One launch that samples every row from its own top-k, top-p and min-p filters with
// randomness keyed by (seed, position, token id): the kernel behind
// sgl_kernel::top_k_top_p_min_p_sampling_from_probs. Our own source, not FlashInfer's.
//
// Per row (one thread block), with w = the row's positive entries (NaN, negatives: 0):
//   0. One pass: the row's largest weight M, its total S, each thread's largest weight.
//   1. The search below, run over the 1024 per-thread maxima (distinct tokens), gives a
//      floor: if k of them, or more than p * S of their mass, lie at or above its result,
//      no token below it can be kept. Tokens below the floor (or below min-p's
//      M * min_p) never enter the row's search.
//   2. A radix descent over the float bits (10, 7, 7, 7 bits) finds the boundary value tau
//      of the kept prefix of the rank order (descending w, ties by token id): the smallest
//      value whose first token survives top-k (fewer than k tokens above it), top-p (mass
//      above it <= p * S) and min-p. A level stops early when its chosen bin is kept whole.
//      Its first level reads the row and keeps the tokens at or above the floor in shared
//      memory (up to 1024); the rest of the kernel reads those when they all fit.
//   3. Only if top-k or top-p cuts inside a run of equal values: the last kept token of
//      that run in token-id order.
//   4. Among kept tokens, argmin of log(E_i) - log(w_i), E_i = -log(u_i), u_i the seeded
//      uniform of (seed, position, i): Gumbel-max, an exact draw.
//
// Deterministic by construction: the histograms add integers (counts and exact mantissa
// sums per bin), the sums across bins and the row total are doubles added in a fixed
// order, the candidates' order in shared memory does not matter, and the final argmin
// breaks ties by token id. Nothing depends on thread scheduling. The warp width changes
// only the order of cub's double reductions (rounding at 2^-53), never the algorithm: no
// shuffles of our own, no inline PTX, no cuda:: functors, no waits between blocks, which
// keeps it portable to MUSA.
#pragma once

#include <atomic>
#include <cfloat>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cub/cub.cuh>

namespace sgl_sampling {

constexpr uint32_t kSeededThreads = 1024;
// Histogram sums of 12-bit mantissa halves fit 32 bits for rows of fewer than 2^20 tokens.
constexpr uint32_t kMaxSeededVocab = (1u << 20) - 1;
constexpr uint32_t kMaxBins = 1024;  // level 0: bits 30..21 (exponent + 2 mantissa bits)
// find_boundary's thread t owns bins bins-1-2t and bins-2-2t, so an instance must have
// at least kMaxBins / kBinsPerThread threads to see every level-0 bin.
constexpr uint32_t kBinsPerThread = 2;
constexpr uint32_t kMinSeededThreads = kMaxBins / kBinsPerThread;  // 512
constexpr uint32_t kInfKey = 0x7F800000u;  // +inf; keys of finite positive floats are below
constexpr uint32_t kNone = 0xFFFFFFFFu;

// The constants of seeded_exponential (sgl_kernel/sampling_reference.py), as unsigned
// integers: the same wrapping arithmetic gives the same numbers.
constexpr uint64_t kMixSeed = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kMixPosition = 0xD1B54A32D192ED03ull;
constexpr uint64_t kMix1 = 0xBF58476D1CE4E5B9ull;
constexpr uint64_t kMix2 = 0x94D049BB133111EBull;
constexpr uint32_t kMixToken = 0x9E3779B9u;
constexpr uint32_t kMix32First = 0x7FEB352Du;
constexpr uint32_t kMix32Second = 0x846CA68Bu;

// Radix levels over the 31 magnitude bits of a non-negative float: 10 bits (the exponent
// and 2 mantissa bits), then 7, 7, 7. Sized so that the kernel's shared memory stays near
// 21 KB: some Moore Threads GPUs (MTT S70, mp_21) offer only 28 KB per block.
constexpr int kLevels = 4;
__device__ __forceinline__ uint32_t level_shift(int level) {
  return level == 0 ? 21u : level == 1 ? 14u : level == 2 ? 7u : 0u;
}
__device__ __forceinline__ uint32_t level_bins(int level) { return level == 0 ? kMaxBins : 128u; }

// The weight's order-preserving key: its bits if it is > 0 (so NaN and negatives are 0).
__device__ __forceinline__ uint32_t weight_key(float x) {
  return x > 0.f ? __float_as_uint(x) : 0u;
}

// 2^(max(exponent, 1) - 150), built from its bits (a normal double for every exponent).
__device__ __forceinline__ double mantissa_unit(uint32_t exponent) {
  const int64_t power = static_cast<int64_t>(exponent > 1 ? exponent : 1) - 150;
  return __longlong_as_double((power + 1023) << 52);
}

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

// The seeded uniforms, in two parts so that a draw hashes every token with 32-bit integer
// arithmetic only (docs/sampling.md, "The seeded draw"). A row's 64-bit key: seed *
// kMixSeed + position * kMixPosition through the splitmix64 finaliser, once per row. A
// token's u = (2m + 1) / 2^54 with m = high * 2^21 + (low >> 11): `high` one 32-bit mix of
// the token and both halves of the key (a bijection of the token within a row), `low` from
// `high` and the key, needed only for a token whose key can still win (`high` alone
// bounds its Gumbel variable).
__device__ __forceinline__ uint64_t seeded_row_key(int64_t seed, int64_t position) {
  uint64_t x =
      static_cast<uint64_t>(seed) * kMixSeed + static_cast<uint64_t>(position) * kMixPosition;
  x = (x ^ (x >> 30)) * kMix1;
  x = (x ^ (x >> 27)) * kMix2;
  return x ^ (x >> 31);
}
__device__ __forceinline__ uint32_t mix32(uint32_t x) {
  x = (x ^ (x >> 16)) * kMix32First;
  x = (x ^ (x >> 15)) * kMix32Second;
  return x ^ (x >> 16);
}
__device__ __forceinline__ uint32_t seeded_high(uint64_t row_key, uint32_t token) {
  const uint32_t a = static_cast<uint32_t>(row_key), b = static_cast<uint32_t>(row_key >> 32);
  return mix32((a + token * kMixToken) ^ b);
}
__device__ __forceinline__ uint64_t seeded_bits(uint64_t row_key, uint32_t high) {
  const uint32_t low = mix32(high + static_cast<uint32_t>(row_key >> 32));
  return (static_cast<uint64_t>(high) << 21) | (low >> 11);
}

// log(-log(u)) in float32 of token `token`'s seeded uniform, without losing the small
// -log(u) of u near 1.
__device__ __forceinline__ float log_exponential(uint64_t row_key, uint32_t token) {
  const uint64_t m = seeded_bits(row_key, seeded_high(row_key, token));
  float e;
  if (m < (uint64_t{1} << 52)) {
    e = -logf(static_cast<float>(2 * m + 1) * 0x1p-54f);
  } else {  // 1 - u = (2^54 - 2m - 1) / 2^54, exact as an integer
    e = -log1pf(-static_cast<float>((uint64_t{1} << 54) - 2 * m - 1) * 0x1p-54f);
  }
  return logf(e);
}

// Calls f(i, x) for every entry x = row[i] this thread owns, in a fixed order: thread t
// owns the groups of four ids 4q..4q+3 with q = t (mod BLOCK), then the tail ids past the
// last whole group with id = t (mod BLOCK). One float4 load per group where the row is
// 16-byte aligned, four single loads where it is not (any contiguous view works); the same
// ids in the same order either way, so a row's per-thread sums do not depend on where it
// sits in memory (its batch slot).
template <uint32_t BLOCK, typename F>
__device__ __forceinline__ void for_each_entry(const float* row, uint32_t vocab, F&& f) {
  const uint32_t tid = threadIdx.x;
  const uint32_t quads = vocab / 4;
  const bool aligned = (reinterpret_cast<uintptr_t>(row) & 15u) == 0;
  for (uint32_t q = tid; q < quads; q += BLOCK) {
    const float4 v = aligned
                         ? reinterpret_cast<const float4*>(row)[q]
                         : make_float4(row[4 * q], row[4 * q + 1], row[4 * q + 2], row[4 * q + 3]);
    f(4 * q, v.x);
    f(4 * q + 1, v.y);
    f(4 * q + 2, v.z);
    f(4 * q + 3, v.w);
  }
  for (uint32_t i = quads * 4 + tid; i < vocab; i += BLOCK) f(i, row[i]);
}

constexpr uint32_t kCandidates = 1024;  // tokens kept in shared memory after level 0

template <uint32_t BLOCK>
struct SeededShared {
  union {
    typename cub::BlockReduce<uint32_t, BLOCK>::TempStorage key_reduce;
    typename cub::BlockReduce<double, BLOCK>::TempStorage sum_reduce;
    typename cub::BlockReduce<Candidate, BLOCK>::TempStorage pick_reduce;
  } temp;
  // A level's histogram, then (read into registers first) its scan. The mass of a bin is
  // the sum of its tokens' 24-bit mantissas, split in 12-bit halves so that each sum fits
  // 32 bits: 64-bit shared atomics are compare-and-swap loops on the GPUs we measured.
  union {
    struct {
      uint32_t count[kMaxBins];
      uint32_t mass_high[kMaxBins];
      uint32_t mass_low[kMaxBins];
    } hist;
    struct {
      uint32_t count[BLOCK];
      double mass[BLOCK];
    } scan;
  } work;
  // Every token at or above the search's floor, when there are at most kCandidates: the
  // deeper levels, the tie pass and the draw then read these instead of the row.
  uint32_t candidate_key[kCandidates];
  uint32_t candidate_id[kCandidates];
  uint32_t candidates;
  // Values every thread reads after a barrier.
  uint32_t max_key;
  double total;
  uint32_t chosen_bin;
  uint32_t above_count, bin_count;  // tokens above the chosen bin, in it
  double above_mass, bin_mass;
  uint32_t tie_cut;  // last kept token id of the boundary value's run
};

// Exclusive prefix sums over a block's threads of (count, mass), in a fixed order
// (Hillis-Steele in shared `counts` and `masses` of BLOCK entries each; cheaper in
// registers than cub::BlockScan over a (count, double) pair at 1024 threads). Returns the
// block's total mass. Starts and ends with a barrier (the arrays may alias a histogram).
template <uint32_t BLOCK>
__device__ __forceinline__ double block_exclusive_scan(uint32_t* counts, double* masses,
                                                       uint32_t count, double mass,
                                                       uint32_t& count_before,
                                                       double& mass_before) {
  const uint32_t tid = threadIdx.x;
  __syncthreads();
  counts[tid] = count;
  masses[tid] = mass;
  __syncthreads();
  for (uint32_t offset = 1; offset < BLOCK; offset <<= 1) {
    uint32_t c = 0;
    double m = 0;
    if (tid >= offset) {
      c = counts[tid - offset];
      m = masses[tid - offset];
    }
    __syncthreads();
    counts[tid] += c;
    masses[tid] += m;
    __syncthreads();
  }
  count_before = counts[tid] - count;
  mass_before = tid ? masses[tid - 1] : 0.0;  // not inclusive - own: doubles round
  const double total = masses[BLOCK - 1];
  __syncthreads();
  return total;
}

template <uint32_t BLOCK>
__device__ __forceinline__ void exclusive_scan(SeededShared<BLOCK>& s, uint32_t count, double mass,
                                               uint32_t& count_before, double& mass_before) {
  block_exclusive_scan<BLOCK>(s.work.scan.count, s.work.scan.mass, count, mass, count_before,
                              mass_before);
}

// What the search found: keep tokens with key >= threshold_key, except that of the run
// of keys == tie_key only the tie_keep lowest ids are kept.
struct Boundary {
  bool nothing_kept;
  uint32_t threshold_key;
  uint32_t tie_key;
  uint32_t tie_keep;
};

// Radix descent over the float bits (10, 7, 7, 7 bits) for the boundary of the kept prefix
// among the tokens with key >= floor_key that `source(level, f)` passes to f(key, id):
// the smallest value whose first token has fewer than k tokens above it (if cuts_k) and
// at most `limit` mass above it (if cuts_p). A level stops early when its chosen bin is
// kept whole. Every thread calls it; it starts and ends with a barrier.
template <uint32_t BLOCK, typename Source>
__device__ Boundary find_boundary(SeededShared<BLOCK>& s, Source&& source, uint32_t floor_key,
                                  int32_t k, bool cuts_k, bool cuts_p, double limit) {
  static_assert(BLOCK * kBinsPerThread >= kMaxBins,
                "find_boundary: BLOCK threads owning kBinsPerThread bins each must cover the "
                "kMaxBins bins of level 0 (BLOCK >= kMinSeededThreads)");
  const uint32_t tid = threadIdx.x;
  Boundary result{false, floor_key, kNone, 0};
  uint32_t prefix = 0, above_count = 0;
  double above_mass = 0;
  for (int level = 0; level < kLevels; ++level) {
    const uint32_t shift = level_shift(level), bins = level_bins(level);
    const uint32_t high_shift = level == 0 ? 31u : shift + 7u;
    const uint32_t high = prefix >> high_shift;
    __syncthreads();  // everyone is done with the previous level's shared state
    for (uint32_t b = tid; b < bins; b += BLOCK) {
      s.work.hist.count[b] = 0;
      s.work.hist.mass_high[b] = 0;
      s.work.hist.mass_low[b] = 0;
    }
    if (tid == 0) s.chosen_bin = kNone;
    __syncthreads();
    source(level, [&](uint32_t key, uint32_t) {
      if (key >= floor_key && (key >> high_shift) == high) {
        const uint32_t b = (key >> shift) & (bins - 1);
        atomicAdd(&s.work.hist.count[b], 1u);
        if (cuts_p) {
          const uint32_t mantissa = (key & 0x7FFFFFu) | ((key >> 23) ? 0x800000u : 0u);
          atomicAdd(&s.work.hist.mass_high[b], mantissa >> 12);
          atomicAdd(&s.work.hist.mass_low[b], mantissa & 0xFFFu);
        }
      }
    });
    __syncthreads();
    // Thread t owns bins bins-1-2t and bins-2-2t (highest first), so an exclusive scan
    // over threads gives each bin the totals above it.
    static_assert(kBinsPerThread == 2, "the bin ownership below is written for two bins");
    uint32_t count[2] = {0, 0}, bin[2] = {kNone, kNone};
    double mass[2] = {0, 0};
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const uint32_t rank = kBinsPerThread * tid + j;
      if (rank < bins) {
        bin[j] = bins - 1 - rank;
        count[j] = s.work.hist.count[bin[j]];
        const uint32_t exponent = level == 0 ? (bin[j] >> 2) : (prefix >> 23);
        const double mantissas =
            4096.0 * s.work.hist.mass_high[bin[j]] + s.work.hist.mass_low[bin[j]];
        mass[j] = mantissas * mantissa_unit(exponent);
      }
    }
    uint32_t count_above;
    double mass_above;
    exclusive_scan(s, count[0] + count[1], mass[0] + mass[1], count_above, mass_above);
    const uint32_t bin_count_above[2] = {above_count + count_above,
                                         above_count + count_above + count[0]};
    const double bin_mass_above[2] = {above_mass + mass_above, above_mass + mass_above + mass[0]};
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const bool qualifies = bin[j] != kNone && count[j] > 0 &&
                             static_cast<int64_t>(bin_count_above[j]) < k &&
                             !(cuts_p && bin_mass_above[j] > limit);
      if (qualifies) atomicMin(&s.chosen_bin, bin[j]);
    }
    __syncthreads();
    const uint32_t chosen = s.chosen_bin;
    if (chosen == kNone) {
      // top-k <= 0, top-p < 0, or nothing at or above the floor (min-p > 1): no token.
      result.nothing_kept = true;
      break;
    }
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      if (bin[j] == chosen) {
        s.above_count = bin_count_above[j];
        s.above_mass = bin_mass_above[j];
        s.bin_count = count[j];
        s.bin_mass = mass[j];
      }
    }
    __syncthreads();
    prefix |= chosen << shift;
    above_count = s.above_count;
    above_mass = s.above_mass;
    const uint32_t bin_count = s.bin_count;
    const bool whole_by_k = !cuts_k || static_cast<int64_t>(above_count) + bin_count <= k;
    const bool whole_by_p = !cuts_p || !(above_mass + s.bin_mass > limit);
    if (whole_by_k && whole_by_p) {  // the chosen bin is kept whole
      result.threshold_key = max(prefix, floor_key);
      break;
    }
    if (level == kLevels - 1) {  // prefix is the boundary value; how many of its run are kept?
      result.threshold_key = prefix;
      uint64_t keep = bin_count;
      if (cuts_k) {
        const uint64_t room_k = static_cast<uint64_t>(k - static_cast<int64_t>(above_count));
        keep = room_k < keep ? room_k : keep;
      }
      if (cuts_p) {
        // Run members j = 0, 1, ... are kept while above_mass + j * tau <= limit.
        const double room = (limit - above_mass) / static_cast<double>(__uint_as_float(prefix));
        if (room < static_cast<double>(keep)) keep = static_cast<uint64_t>(floor(room)) + 1;
      }
      if (keep < bin_count) {
        result.tie_key = prefix;
        result.tie_keep = static_cast<uint32_t>(keep);
      }
    }
  }
  __syncthreads();
  return result;
}

template <uint32_t BLOCK>
__global__ void __launch_bounds__(BLOCK)
    SeededTopKTopPMinPSamplingKernel(const float* __restrict__ probs, int32_t* __restrict__ output,
                                     const int32_t* __restrict__ top_k_arr,
                                     const float* __restrict__ top_p_arr,
                                     const float* __restrict__ min_p_arr,
                                     const int64_t* __restrict__ seed_arr,
                                     const int64_t* __restrict__ position_arr, uint32_t vocab) {
  static_assert(BLOCK >= kMinSeededThreads && BLOCK * kBinsPerThread >= kMaxBins,
                "the fused kernel needs BLOCK >= kMaxBins / kBinsPerThread threads");
  __shared__ SeededShared<BLOCK> s;
  const uint32_t row = blockIdx.x, tid = threadIdx.x;
  const float* p = probs + static_cast<size_t>(row) * vocab;

  // 0. Largest key (+inf included, so it is seen), total, each thread's largest key.
  // The total in double: a float32 running sum rounds at 2^-24 (top-p's limit moves) and
  // can overflow, or not, unlike the exact total the validity rule is defined on.
  uint32_t local_max = 0;
  double local_total = 0.0;
  for_each_entry<BLOCK>(p, vocab, [&](uint32_t, float x) {
    const uint32_t key = weight_key(x);
    local_max = key > local_max ? key : local_max;
    local_total += key ? static_cast<double>(x) : 0.0;
  });
  const uint32_t block_max =
      cub::BlockReduce<uint32_t, BLOCK>(s.temp.key_reduce).Reduce(local_max, MaxKey());
  if (tid == 0) s.max_key = block_max;
  __syncthreads();
  const double block_total = cub::BlockReduce<double, BLOCK>(s.temp.sum_reduce).Sum(local_total);
  if (tid == 0) {
    s.total = block_total;
    s.candidates = 0;
  }
  __syncthreads();
  const uint32_t max_key = s.max_key;
  const double total = s.total;
  // Invalid rows (+inf, or a total that is not a normal float32) sample token 0.
  const bool valid = max_key < kInfKey && total >= FLT_MIN && total <= FLT_MAX;

  const int32_t k = top_k_arr[row];
  const float top_p = top_p_arr[row];
  // min-p threshold, rounded to float32 like the reference; NaN or <= 0 never cuts.
  const float min_w = __uint_as_float(max_key) * min_p_arr[row];
  const uint32_t min_key = min_w > 0.f ? __float_as_uint(min_w) : 1u;  // 1: zero never kept
  const bool cuts_k = k < static_cast<int64_t>(vocab);
  const bool cuts_p = top_p < 1.f;  // NaN: false
  const double limit = static_cast<double>(top_p) * total;

  Boundary kept{!valid, min_key, kNone, 0};
  bool buffered = false;  // the candidates hold every token the draw can pick
  if (valid && (cuts_k || cuts_p)) {
    // 1. A floor for the search: the same boundary T among the 1024 per-thread maxima (distinct
    // tokens). If k of them are >= T, every token below T has rank >= k; if their mass at
    // or above T passes p * S, every token below T has more than p * S above it. Either way
    // no token below T can be kept. (Otherwise T bounds nothing: the maxima ran out.)
    const Boundary among_maxima = find_boundary(
        s, [&](int, auto&& add) { add(local_max, tid); }, 1u, k, cuts_k, cuts_p, limit);
    kept.nothing_kept = among_maxima.nothing_kept;
    if (!kept.nothing_kept) {
      const bool at_or_above = local_max >= among_maxima.threshold_key;
      const uint32_t count =
          cub::BlockReduce<uint32_t, BLOCK>(s.temp.key_reduce).Sum(at_or_above ? 1u : 0u);
      if (tid == 0) s.above_count = count;
      __syncthreads();
      const double mass =
          cub::BlockReduce<double, BLOCK>(s.temp.sum_reduce)
              .Sum(at_or_above ? static_cast<double>(__uint_as_float(local_max)) : 0.0);
      if (tid == 0) s.above_mass = mass;
      __syncthreads();
      const bool bounds =
          (cuts_k && static_cast<int64_t>(s.above_count) >= k) || (cuts_p && s.above_mass > limit);
      const uint32_t floor_key = bounds ? max(among_maxima.threshold_key, min_key) : min_key;
      // 2. Level 0 reads the row and collects the tokens at or above the floor; deeper levels
      // read those when they all fit.
      kept = find_boundary(
          s,
          [&](int level, auto&& add) {
            if (level > 0 && s.candidates <= kCandidates) {
              for (uint32_t c = tid; c < s.candidates; c += BLOCK) {
                add(s.candidate_key[c], s.candidate_id[c]);
              }
              return;
            }
            // Once the buffer has overflowed (count > kCandidates) nobody reads it and
            // the count only has to stay above kCandidates: a thread that sees that (a
            // stale read can only be lower, never skips too early) takes no more atomics.
            bool overflowed = false;
            for_each_entry<BLOCK>(p, vocab, [&](uint32_t i, float x) {
              const uint32_t key = weight_key(x);
              if (level == 0 && key >= floor_key && !overflowed) {
                overflowed = *static_cast<volatile uint32_t*>(&s.candidates) > kCandidates;
                if (!overflowed) {
                  const uint32_t slot = atomicAdd(&s.candidates, 1u);
                  if (slot < kCandidates) {
                    s.candidate_key[slot] = key;
                    s.candidate_id[slot] = i;
                  }
                  overflowed = slot >= kCandidates;
                }
              }
              add(key, i);
            });
          },
          floor_key, k, cuts_k, cuts_p, limit);
      buffered = s.candidates <= kCandidates;
    }
  }

  // 3. The tie_keep-th token (in id order) of the boundary run, when only part of it is
  // kept: from the candidates, the one with tie_keep - 1 smaller ids among them; from
  // the row, each thread counts the run in its own slice and one scan finds the slice.
  uint32_t tie_cut = kNone;
  if (!kept.nothing_kept && kept.tie_key != kNone) {
    if (tid == 0) s.tie_cut = kNone;
    __syncthreads();
    if (buffered) {
      const uint32_t n = s.candidates;
      for (uint32_t c = tid; c < n; c += BLOCK) {
        if (s.candidate_key[c] != kept.tie_key) continue;
        uint32_t smaller = 0;
        for (uint32_t o = 0; o < n; ++o) {
          smaller += s.candidate_key[o] == kept.tie_key && s.candidate_id[o] < s.candidate_id[c];
        }
        if (smaller + 1 == kept.tie_keep) s.tie_cut = s.candidate_id[c];
      }
    } else {
      const uint32_t slice = (vocab + BLOCK - 1) / BLOCK;
      const uint32_t begin = min(tid * slice, vocab), end = min(begin + slice, vocab);
      uint32_t mine = 0;
      for (uint32_t i = begin; i < end; ++i) mine += weight_key(p[i]) == kept.tie_key;
      uint32_t before;
      double unused;
      exclusive_scan(s, mine, 0.0, before, unused);
      if (before < kept.tie_keep && kept.tie_keep <= before + mine) {
        uint32_t seen = before;
        for (uint32_t i = begin; i < end; ++i) {
          if (weight_key(p[i]) == kept.tie_key && ++seen == kept.tie_keep) {
            s.tie_cut = i;
            break;
          }
        }
      }
    }
    __syncthreads();
    tie_cut = s.tie_cut;
  }

  // 4. Gumbel-max over the kept tokens.
  Candidate best{INFINITY, kNone};
  if (!kept.nothing_kept) {
    const uint64_t row_key = seeded_row_key(seed_arr[row], position_arr[row]);
    auto consider = [&](uint32_t i, uint32_t key) {
      if (key < kept.threshold_key || (key == kept.tie_key && i > tie_cut)) return;
      const float w = __uint_as_float(key);
      best = MinCandidate()(best, Candidate{log_exponential(row_key, i) - logf(w), i});
    };
    if (buffered) {
      for (uint32_t c = tid; c < s.candidates; c += BLOCK) {
        consider(s.candidate_id[c], s.candidate_key[c]);
      }
    } else {
      for_each_entry<BLOCK>(p, vocab, [&](uint32_t i, float x) { consider(i, weight_key(x)); });
    }
  }
  __syncthreads();
  const Candidate winner =
      cub::BlockReduce<Candidate, BLOCK>(s.temp.pick_reduce).Reduce(best, MinCandidate());
  if (tid == 0) output[row] = winner.index == kNone ? 0 : static_cast<int32_t>(winner.index);
}

// The forced instance from SGL_KERNEL_FUSED_BLOCK (read once): 0 when unset or empty,
// kSeededThreads or kMinSeededThreads when it names one, -1 for anything else.
inline int forced_seeded_block() {
  static const int forced = [] {
    const char* value = std::getenv("SGL_KERNEL_FUSED_BLOCK");
    if (value == nullptr || *value == '\0') return 0;
    if (std::strcmp(value, "1024") == 0) return static_cast<int>(kSeededThreads);
    if (std::strcmp(value, "512") == 0) return static_cast<int>(kMinSeededThreads);
    return -1;
  }();
  return forced;
}

// The instance to launch on the current device: the 1024-thread one, or the
// kMinSeededThreads one where the device reports fewer than 1024 threads per block (its
// cudaDevAttrMaxThreadsPerBlock, queried once per device), or the one
// SGL_KERNEL_FUSED_BLOCK forces. An unknown SGL_KERNEL_FUSED_BLOCK, or a device that
// cannot run kMinSeededThreads threads, is cudaErrorInvalidValue with the reason on stderr.
inline cudaError_t seeded_block_size(uint32_t* block) {
  const int forced = forced_seeded_block();
  if (forced < 0) {
    std::fprintf(stderr,
                 "sgl_kernel: SGL_KERNEL_FUSED_BLOCK must be 512 or 1024 (or unset), got '%s'\n",
                 std::getenv("SGL_KERNEL_FUSED_BLOCK"));
    return cudaErrorInvalidValue;
  }
  int device = 0;
  cudaError_t status = cudaGetDevice(&device);
  if (status != cudaSuccess) return status;
  constexpr int kCachedDevices = 64;
  static std::atomic<int> max_threads[kCachedDevices] = {};  // 0: not queried yet
  int limit = device >= 0 && device < kCachedDevices ? max_threads[device].load() : 0;
  if (limit == 0) {
    status = cudaDeviceGetAttribute(&limit, cudaDevAttrMaxThreadsPerBlock, device);
    if (status != cudaSuccess) return status;
    if (device >= 0 && device < kCachedDevices) max_threads[device].store(limit);
  }
  const uint32_t wanted = forced ? static_cast<uint32_t>(forced) : kSeededThreads;
  *block = static_cast<uint32_t>(limit) >= wanted ? wanted : kMinSeededThreads;
  if (static_cast<uint32_t>(limit) < *block) {
    std::fprintf(stderr,
                 "sgl_kernel: the fused sampling kernel needs %u threads per block; device %d "
                 "offers %d\n",
                 kMinSeededThreads, device, limit);
    return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

// Launches one block per row on `stream` (block size: seeded_block_size); the caller has
// checked every argument.
inline cudaError_t SeededTopKTopPMinPSampling(const float* probs, int32_t* output,
                                              const int32_t* top_k, const float* top_p,
                                              const float* min_p, const int64_t* seeds,
                                              const int64_t* positions, uint32_t rows,
                                              uint32_t vocab, cudaStream_t stream) {
  uint32_t block = 0;
  const cudaError_t status = seeded_block_size(&block);
  if (status != cudaSuccess) return status;
  if (block == kSeededThreads) {
    SeededTopKTopPMinPSamplingKernel<kSeededThreads><<<rows, kSeededThreads, 0, stream>>>(
        probs, output, top_k, top_p, min_p, seeds, positions, vocab);
  } else {
    SeededTopKTopPMinPSamplingKernel<kMinSeededThreads><<<rows, kMinSeededThreads, 0, stream>>>(
        probs, output, top_k, top_p, min_p, seeds, positions, vocab);
  }
  return cudaGetLastError();
}

}  // namespace sgl_sampling
