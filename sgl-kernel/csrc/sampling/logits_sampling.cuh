// From logits to token ids in four launches: the kernels behind
// sgl_kernel::top_k_top_p_min_p_sampling_from_logits. Our own source, not FlashInfer's.
//
// Per row, with s_i = the scaled logit x_i * (1 / temperature) (NaN and -inf -> -FLT_MAX,
// +inf -> FLT_MAX), M = max s, and the weight w_i = expf(s_i - M) (in (0, 1], 1 at the max):
//   greedy rows (temperature <= 0 or NaN, or top_k == 1): the argmax of s, ties to the
//     lower id (top_k == 1 also needs top_p >= 0 and min_p <= 1 to keep it, else token 0);
//   other rows: the tokens of the fused op's definition (seeded_sampling.cuh) over w, drawn
//     by Gumbel-max with the key (s_i - M) - log(E_i), E_i = -log(u_i) of the seeded uniform.
//
// The launches, (row, chunk) blocks, G chunks per row (G = 1 when the batch fills the GPU):
//   1. RowMaxKernel: the chunk's largest (s, id), packed so that one integer max gives M
//      and the argmax; zeroes the row's workspace. A row that keeps every token (no cut,
//      no min-p) is drawn here too, in the same read (OnePassDraw). For a cut row (batch >=
//      kEarlyListRows), also a guessed floor from the threads' maxima: the kept set
//      probably lies above it.
//   2. RowHistogramKernel: greedy rows write their argmax; a row launch 1 drew writes its
//      token (one_pass_winner), or, in the rare case launch 1 could not tell, draws again
//      like a min-p row. Rows that only cut by min-p draw here: the best key among their
//      kept tokens (w >= min-p's threshold) of the chunk, merged by an integer max, the
//      row's last block writing the token. Rows that cut by top-k or top-p add a 2048-bin
//      histogram of w's bits (counts, and for top-p exact mantissa sums; 32-bit integer
//      atomics) to the row's workspace, and list the tokens in bins at or above the
//      guessed floor's (the early list, kFloorList); the row's last block to do so chooses
//      the level-0 bin (no row read) and checks whether the list holds every token at or
//      above that bin.
//   3. RowSelectKernel (G blocks per row at small batch, else 1; logits_split_select),
//      rows with a top-k or top-p cut only. A row whose early list holds its boundary: one
//      block does the deeper levels (7/6/6 bits), the tie rule and the draw from the list
//      in shared memory, reading nothing of the row. Else, when every
//      token at or above the boundary bin fits the row's candidate list (kRowCandidates;
//      top-k rows), each block collects its chunk's and the row's last block does the
//      same from them; when only the bin's own tokens fit (most top-p rows), the same
//      without the draw, except that with one block per row and at most kDrawAboveMax
//      tokens above the bin, each block draws among those as it reads and the last block
//      adds the bin's kept ones. Otherwise the last block reads the row level by level
//      until the boundary's tokens fit its buffer. Rows it does not draw go to launch 4.
//   4. RowDrawKernel: the draw of the rows launch 3 left (top-p rows with many kept
//      tokens), the row's last block to finish writing the token.
// Launches 2 and 3 each come in two instances (launch_logits_step picks them): the code
// of the early list and of the draw above the bin would slow the plain path. When the
// caller gives neither top_k nor top_p (None: no row cuts), launches 3 and 4 are not made.
//
// "The row's last block" is found with a counter in the workspace, never by waiting: the
// block that brings the counter to G reads what the others wrote before counting.
//
// Every draw skips the logs of a token whose key cannot reach the best its block has found
// (GumbelMax: a bound of the Gumbel variable from the hash's high word), and every threshold
// test skips expf where d is clearly on one side (WeightCut).
//
// Split-invariant and batch-invariant by construction: everything combined across threads
// and blocks is a max or an integer sum (order-free), and the bin masses are summed in a
// fixed order in one block (the candidate list's order varies, but nothing read from it
// depends on order); the guessed floor depends on G, but only decides where the tokens
// at or above the boundary are read from, never which they are (the same for the batch
// size that turns the list and the draw above the bin on); likewise whether launch 1's
// draw of a row decides it (its runner-up depends on which tokens the blocks skipped) only
// decides whether launch 2 draws again, never the token. So neither G, the row's strides
// and alignment, nor its batch slot can change a token. No waits between blocks (launch
// order only), no inline PTX, no shuffles of our own, no cuda:: functors: ports to MUSA as
// the fused probs kernel does.
#pragma once

#include <cfloat>
#include <cstdint>
#include <cub/cub.cuh>
#include <type_traits>

#include "seeded_sampling.cuh"

namespace sgl_sampling {

constexpr uint32_t kChunkThreads = 512;    // launches 1 and 2
constexpr uint32_t kSelectThreads = 1024;  // launch 3
constexpr uint32_t kMinChunk = 4096;       // tokens per (row, chunk) block at least
constexpr uint32_t kBins0 = 2048;          // level 0: bits 29..19 of w (w <= 1: bit 30 is 0)
constexpr uint32_t kShift0 = 19;
constexpr uint32_t kBuffer = 4096;  // boundary-bin tokens kept in shared memory in launch 3
// Launch 3's candidates (id, s - M) per row, in the 24 KB the level-0 histogram used.
constexpr uint32_t kRowCandidates = 3 * kBins0 * sizeof(uint32_t) / 8;
static_assert(kRowCandidates <= kBuffer, "launch 3's last block copies every candidate to shared");
constexpr uint32_t kTieList = 2048;  // a tie run this short is ranked in shared memory
constexpr int kLogitsLevels = 4;     // 11, 7, 6, 6 bits
// Launch 2's early list: the tokens at or above a floor guessed in launch 1 from the
// threads' maxima (kFloorList per row). When it holds every token at or above level 0's
// boundary bin, launch 3 reads nothing of the row.
constexpr uint32_t kFloorList = 1024;
constexpr uint32_t kTopPGuess = 64;  // the kept-set size guessed for a top-p row
// From this batch size up. Below it launch 3's read is split over the row's blocks and
// cheap, and the guess and the list cost launches 1 and 2 more than they save (H200).
constexpr uint32_t kEarlyListRows = 4;
constexpr uint32_t kNoFloor = 0xFFFFFFFFu;  // a row without a guessed floor
// Launch 3 draws above a top-p row's boundary bin as it reads (one block per row, not
// split) when at most this many tokens lie above it; a flatter row's draw, or a split
// row's, is cheaper in launch 4 (more, smaller blocks).
constexpr uint32_t kDrawAboveMax = 8 * kRowCandidates;
static_assert(kFloorList <= kBuffer, "launch 3 copies the early list to shared memory");
static_assert(kSelectThreads >= 128, "launch 3: each thread owns one bin of a deeper level");

__device__ __forceinline__ uint32_t logits_level_shift(int level) {
  return level == 0 ? kShift0 : level == 1 ? 12u : level == 2 ? 6u : 0u;
}
__device__ __forceinline__ uint32_t logits_level_bins(int level) {
  return level == 0 ? kBins0 : level == 1 ? 128u : 64u;
}

// Per-row workspace of launches 1-4 (global memory, zeroed by launch 1).
struct RowWork {
  // Launch 2: the row's level-0 histogram; then launch 3: its candidates (tokens at or
  // above level 0's bin, or in it), when they fit.
  union {
    struct {
      uint32_t count[kBins0];
      uint32_t mass_high[kBins0];  // sums of the 12-bit halves of 24-bit mantissas
      uint32_t mass_low[kBins0];
    } hist;
    struct {
      uint32_t id[kRowCandidates];
      float d[kRowCandidates];  // s - M
    } candidates;
  } u;
  unsigned long long row_best;  // the best kept token so far (launches 2 and 4)
  // Level 0's choice, by launch 2's last block of the row (chosen_bin kNone: nothing kept).
  double above_mass, bin_mass, limit;
  uint32_t chosen_bin, above_count, bin_count;
  uint32_t candidates_taken;  // launch 3's slots in u.candidates
  // Set by launch 3 for a row whose kept tokens did not fit its buffer: launch 4 draws.
  uint32_t needs_draw, threshold, tie_key, tie_cut;
  // Blocks of the row that have finished launch 2, 3 and 4 (the last one of each goes on).
  uint32_t hist_done, collect_done, chunks_done;
  // Launch 2's early list: entries reserved (more than kFloorList: it overflowed), and
  // whether it holds every token at or above level 0's bin (set by the row's last block).
  uint32_t floor_taken, prebuffered;
};

// Launch 2's early list of a row (not zeroed: floor_taken says what is valid).
struct FloorList {
  uint32_t id[kFloorList];
  float d[kFloorList];  // s - M
};

// A float's bits mapped so that unsigned order is float order (negatives below positives;
// -0 is +0, as in torch's argmax, so the first of a run of zeros wins).
__device__ __forceinline__ uint32_t ordered_bits(float x) {
  const uint32_t u = __float_as_uint(x == 0.f ? 0.f : x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float from_ordered_bits(uint32_t o) {
  return __uint_as_float((o & 0x80000000u) ? (o & 0x7FFFFFFFu) : ~o);
}
// (value, id) in one integer: a larger value wins, then the lower id. 0 is below any pair.
__device__ __forceinline__ unsigned long long pack_best(float value, uint32_t id) {
  return (static_cast<unsigned long long>(ordered_bits(value)) << 32) | (0xFFFFFFFFu - id);
}
__device__ __forceinline__ uint32_t packed_id(unsigned long long packed) {
  return 0xFFFFFFFFu - static_cast<uint32_t>(packed);
}

// 64-bit max through compare-and-swap (portable: no 64-bit atomicMax needed). The plain
// read first skips the atomic for every value that cannot win; values only grow, so a
// stale read can only cost an extra loop.
__device__ __forceinline__ void atomic_max_packed(unsigned long long* address,
                                                  unsigned long long value) {
  unsigned long long seen = *reinterpret_cast<volatile unsigned long long*>(address);
  while (value > seen) {
    const unsigned long long prior = atomicCAS(address, seen, value);
    if (prior == seen) break;
    seen = prior;
  }
}

// A read of a value other blocks update with atomics, through the atomics themselves (in
// L2): swapping 0 for 0 changes nothing, and no stale cached copy is seen.
__device__ __forceinline__ unsigned long long atomic_read(unsigned long long* address) {
  return atomicCAS(address, 0ull, 0ull);
}

struct MaxPacked {
  __device__ __forceinline__ unsigned long long operator()(unsigned long long a,
                                                           unsigned long long b) const {
    return a > b ? a : b;
  }
};

// The scaled logit with the Sampler's non-finite contract (fmaxf maps NaN to -FLT_MAX).
__device__ __forceinline__ float scaled_logit(float x, float inv_temperature) {
  return fminf(fmaxf(x * inv_temperature, -FLT_MAX), FLT_MAX);
}

// What a row asks for, from its parameters alone.
struct RowPlan {
  float inv_temperature;  // 1 for greedy rows
  bool greedy;
  bool cuts;         // top-k or top-p cut: the histogram path
  bool keeps_all;    // no cut and no min-p: launch 1 draws the row as it finds its max
  uint32_t min_key;  // kept weights are >= this key (1: any w > 0)
  int32_t k;
  float top_p;
};

__device__ __forceinline__ RowPlan plan_row(float temperature, int32_t k, float top_p, float min_p,
                                            uint32_t vocab) {
  RowPlan plan;
  plan.greedy = !(temperature > 0.f) || k == 1;
  plan.inv_temperature = temperature > 0.f ? 1.f / temperature : 1.f;
  plan.k = k;
  plan.top_p = top_p;
  plan.cuts = k < static_cast<int64_t>(vocab) || top_p < 1.f;  // NaN p: no cut
  // min-p threshold: float32(max w * min_p) = min_p; NaN or <= 0 never cuts.
  plan.min_key = min_p > 0.f ? __float_as_uint(min_p) : 1u;
  plan.keeps_all = !plan.greedy && !plan.cuts && plan.min_key <= 1u;
  return plan;
}

// float(v) for v < 2^23 from its bits (2^23 + v is exact): no conversion instruction.
__device__ __forceinline__ float exact_float(uint32_t v) {
  return __uint_as_float(0x4B000000u | v) - 8388608.f;
}

// The seeded draw (seeded_sampling.cuh's seeded_row_key, seeded_high, seeded_bits) in the
// parts a Gumbel-max needs: log(E) with E = -log(u) of m's u = (2m + 1) / 2^54, and an
// upper bound of the Gumbel variable -log(E) read off m's high word alone.
// log(E), evaluated with the fast log (MUFU) and a series for E = -log1p(-v), v = 1 - u <
// 1/16. Its error, a few 1e-7 relative, is below the float32 rounding of the Gumbel key it
// enters, so it moves only float near-ties.
__device__ __forceinline__ float fast_log_exponential(uint64_t m) {
  float e;
  if (m < (uint64_t{1} << 52)) {
    e = -__logf(static_cast<float>(2 * m + 1) * 0x1p-54f);
  } else {
    const float v = static_cast<float>((uint64_t{1} << 54) - 2 * m - 1) * 0x1p-54f;  // 1 - u
    if (v < 0.0625f) {
      e = v * (1.f + v * (0.5f + v * (1.f / 3 + v * (0.25f + v * (0.2f + v * (1.f / 6))))));
    } else {
      e = -__logf(1.f - v);
    }
  }
  return __logf(e);
}

// -log(E) <= this, with room for the float rounding of the key, from m's high word h alone
// (m = h * 2^21 + 21 low bits): h < 2^31 means u < 1/2, so E > log 2; otherwise E >=
// 1 - u >= (2^22 * ~h + 1) / 2^54 > 2^(floor(log2 ~h) - 32). floor(log2 ~h) is read off
// the exponent of float(~h >> 8) built from its bits: no clz or conversion instruction,
// as this runs for every token of a draw.
__device__ __forceinline__ float gumbel_bound(uint32_t high) {
  if (high < 0x80000000u) return 0.37f + 0.01f;
  const uint32_t rest = ~high >> 8;
  if (rest == 0) return 54 * 0.6931472f + 0.01f;  // u within 2^-24 of 1: the largest bound
  const uint32_t exponent = __float_as_uint(exact_float(rest)) >> 23;  // 127 + floor(log2 rest)
  return exact_float(151u - exponent) * 0.6931472f + 0.01f;            // (32 - floor(log2 ~h)) ln 2
}

// A token's Gumbel variable -log(E) of the seeded draw, in the two steps every draw takes:
// an upper bound read off the hash's high word, then, only for a token the bound does not
// rule out, the value itself (two logs).
struct SeededGumbel {
  uint64_t row_key;
  uint32_t high;
  __device__ __forceinline__ SeededGumbel(uint64_t key, uint32_t token)
      : row_key(key), high(seeded_high(key, token)) {}
  __device__ __forceinline__ float bound() const { return gumbel_bound(high); }
  __device__ __forceinline__ float value() const {
    return -fast_log_exponential(seeded_bits(row_key, high));
  }
};

// Thread 0 starts a block's shared floor (GumbelMax, OnePassDraw) below every key; the block
// syncs before its first draw.
__device__ __forceinline__ void open_block_floor(uint32_t& floor) {
  if (threadIdx.x == 0) floor = ordered_bits(-INFINITY);
}

// Which d = s - M give a weight key of at least `key` (a positive float's bits), without
// expf where the answer is clear: expf is within 2 ulp where its result is normal and logf
// within 1, so every d 2^-10 above logf(float(key)) is in and every d as far below is out
// (both bounds stay where expf's result is normal). Only d between needs weight_key(expf(d)).
struct WeightCut {
  float surely_in, surely_out;
  __device__ __forceinline__ explicit WeightCut(uint32_t key) {
    const float at = logf(__uint_as_float(key > 0 ? key : 1u));
    surely_in = fmaxf(at + 0x1p-10f, -80.f);
    surely_out = key >= 0x0D800000u ? at - 0x1p-10f : -INFINITY;  // key >= 2^-100
  }
  // Whether d's weight key is at least `key` (the constructor's).
  __device__ __forceinline__ bool keeps(float d, uint32_t key) const {
    return d >= surely_in || (!(d < surely_out) && weight_key(expf(d)) >= key);
  }
};

// The running Gumbel-max of one thread: the packed best (key, id), and the floor below which
// a token cannot win: the best key the block has found so far (`block_floor`, ordered bits
// in shared memory, raised by atomicMax). A token whose key bound is below the floor skips
// the logs; the block's floor keeps that rare after the first few tokens, where a thread's
// own best would let most warps run the logs on every step.
struct GumbelMax {
  unsigned long long best = 0;
  float floor = -INFINITY;  // the block's best key as this thread last read it
  uint32_t* block_floor;
  __device__ __forceinline__ explicit GumbelMax(uint32_t* shared_floor)
      : block_floor(shared_floor) {}
  __device__ __forceinline__ bool below_floor(float bound) const {
    return bound < floor - fabsf(floor) * 0x1p-20f;  // room for the fast log's error
  }
  __device__ __forceinline__ void consider(uint64_t row_key, uint32_t token, float d) {
    const SeededGumbel gumbel(row_key, token);
    const float bound = d + gumbel.bound();
    if (below_floor(bound)) return;
    floor = fmaxf(floor, from_ordered_bits(*static_cast<volatile uint32_t*>(block_floor)));
    if (below_floor(bound)) return;
    const float key = d + gumbel.value();
    const unsigned long long p = pack_best(key, token);
    if (p > best) best = p;
    if (key > floor) {
      floor = key;
      atomicMax(block_floor, ordered_bits(key));
    }
  }
};

// Launch 1's draw of a row that keeps every token, in the read that finds its max (so the
// row needs no second read): the Gumbel-max over rho_i = s_i - log(E_i), which needs no M,
// and the best rho of any other token (the runner-up). rho and the key every other draw
// uses, k_i = (s_i - M) - log(E_i), differ only by two float roundings, far below
// one_pass_margin(rho) / 2 (log(E) lies in [-37.5, 3.7], so the winner's s - M and k stay
// within 41 of 0), so when the runner-up lies more than that below the winner, the winner
// is the k's winner too (one_pass_winner); otherwise launch 2 draws the row again by k. A
// token whose bound lies more than the margin below the block's best cannot matter to
// either, and skips the logs (the margin's other half covers the bound's rounding).
__device__ __forceinline__ float one_pass_margin(float rho) {
  return (fabsf(rho) + 256.f) * 0x1p-19f;
}
struct OnePassDraw {
  unsigned long long best = 0;  // packed (rho, id)
  float best_rho = -INFINITY, runner_up = -INFINITY;
  float cut = -INFINITY;  // the block's best as last read, less the margin
  uint32_t* block_floor;  // the block's best rho (ordered bits, shared)
  __device__ __forceinline__ explicit OnePassDraw(uint32_t* shared_floor)
      : block_floor(shared_floor) {}
  __device__ __forceinline__ void consider(uint64_t row_key, uint32_t token, float s) {
    const SeededGumbel gumbel(row_key, token);
    const float bound = s + gumbel.bound();
    if (bound < cut) return;
    const float floor = from_ordered_bits(*static_cast<volatile uint32_t*>(block_floor));
    cut = fmaxf(cut, floor - one_pass_margin(floor));  // increasing in floor
    if (bound < cut) return;
    const float rho = s + gumbel.value();
    const unsigned long long p = pack_best(rho, token);
    if (p > best) {
      runner_up = fmaxf(runner_up, best_rho);
      best = p;
      best_rho = rho;
    } else {
      runner_up = fmaxf(runner_up, rho);
    }
    if (rho > floor) atomicMax(block_floor, ordered_bits(rho));
  }
};

// Calls f(i, x) for the row's entries begin <= i < end, as float. 16-byte loads where the
// row is contiguous and aligned, single strided loads otherwise; every result is an
// order-free combination, so the access pattern never changes a token.
template <uint32_t BLOCK, typename T, typename F>
__device__ __forceinline__ void for_each_logit(const T* row, int64_t col_stride, uint32_t begin,
                                               uint32_t end, F&& f) {
  constexpr uint32_t kVec = 16 / sizeof(T);
  uint32_t scalar_begin = begin;
  if (col_stride == 1 && (reinterpret_cast<uintptr_t>(row + begin) & 15u) == 0) {
    const uint32_t groups = (end - begin) / kVec;
    const uint4* vec = reinterpret_cast<const uint4*>(row + begin);
    // Four loads in flight per thread before any use: one block reading a whole row (launch
    // 3) is latency-bound otherwise.
    constexpr uint32_t kInFlight = 4;
    for (uint32_t g0 = threadIdx.x; g0 < groups; g0 += kInFlight * BLOCK) {
      union {
        uint4 raw;
        T value[kVec];
      } v[kInFlight];
#pragma unroll
      for (uint32_t u = 0; u < kInFlight; ++u) {
        const uint32_t g = g0 + u * BLOCK;
        if (g < groups) v[u].raw = vec[g];
      }
#pragma unroll
      for (uint32_t u = 0; u < kInFlight; ++u) {
        const uint32_t g = g0 + u * BLOCK;
        if (g >= groups) break;
#pragma unroll
        for (uint32_t j = 0; j < kVec; ++j) {
          f(begin + g * kVec + j, static_cast<float>(v[u].value[j]));
        }
      }
    }
    scalar_begin = begin + groups * kVec;
  }
  for (uint32_t i = scalar_begin + threadIdx.x; i < end; i += BLOCK) {
    f(i, static_cast<float>(row[static_cast<int64_t>(i) * col_stride]));
  }
}

// The arguments every launch takes.
template <typename T>
struct LogitsArgs {
  const T* logits;
  int64_t row_stride, col_stride;
  int32_t* output;
  const float* temperature;
  const int32_t* top_k;  // nullptr: no row cuts by top-k (likewise top_p, min_p)
  const float* top_p;
  const float* min_p;
  const int64_t* seeds;
  const int64_t* positions;  // nullptr: position 0
  uint32_t vocab;
  uint32_t chunks;                 // G
  uint32_t chunk;                  // tokens per chunk, a multiple of 16
  bool split_select;               // launch 3 on G blocks per row, not 1 (logits_split_select)
  bool early_list;                 // launch 1 guesses floors, launch 2 lists (set by the planner)
  bool may_cut;                    // top_k or top_p given: launches 3 and 4 run (the planner)
  uint32_t select_chunks;          // launch 3's blocks per row (set by the launcher)
  uint32_t select_chunk;           // their tokens per block
  unsigned long long* row_max;     // [rows, G] packed (s, id)
  uint32_t* chunk_floor;           // [rows, G] launch 1's guessed floors (ordered bits)
  unsigned long long* chunk_draw;  // [rows, G] launch 1's winner of a keeps_all row (rho, id)
  uint32_t* chunk_runner_up;       // [rows, G] and the best other rho (ordered bits)
  RowWork* work;                   // [rows]
  FloorList* floor_list;           // [rows]
};

// An absent filter (nullptr: the caller passed None) cuts no row.
template <typename T>
__device__ __forceinline__ RowPlan plan_of(const LogitsArgs<T>& a, uint32_t row) {
  return plan_row(a.temperature[row], a.top_k ? a.top_k[row] : INT32_MAX,
                  a.top_p ? a.top_p[row] : 1.f, a.min_p ? a.min_p[row] : 0.f, a.vocab);
}

// Where the row's entries begin in launch 1's per-chunk arrays ([rows, G]: row_max,
// chunk_floor, chunk_draw, chunk_runner_up).
template <typename T>
__device__ __forceinline__ size_t chunk_base(const LogitsArgs<T>& a, uint32_t row) {
  return static_cast<size_t>(row) * a.chunks;
}

template <typename T>
__device__ __forceinline__ uint64_t row_key_of(const LogitsArgs<T>& a, uint32_t row) {
  return seeded_row_key(a.seeds[row], a.positions ? a.positions[row] : 0);
}

// The rank launch 1 takes among a chunk's thread maxima to guess a row's floor: the kept
// set's size where top-k states it, kTopPGuess for top-p; per chunk, about four times the
// kept set's share of a split row (so the list holds a few times the kept set when the
// row's top tokens are spread over its chunks). 0: no guess (no cut, or a kept set larger
// than the block's threads could bound).
__device__ __forceinline__ uint32_t floor_rank(const RowPlan& plan, uint32_t vocab,
                                               uint32_t chunks) {
  if (plan.greedy || !plan.cuts) return 0;
  int64_t kept = plan.top_p < 1.f ? kTopPGuess : plan.k;
  if (plan.k < kept) kept = plan.k;
  if (kept <= 0 || kept > kChunkThreads) return 0;
  const int64_t share = (4 * kept + chunks - 1) / chunks + 8;
  return static_cast<uint32_t>(share < kept ? share : kept);
}

// Launch 1's guess of a cut row's floor in one chunk: about the rank-th largest of the
// threads' maxima, read off a histogram of their distances below the chunk's max on a
// geometric ladder (kLadderBase * 1.15^j: 15% steps from 1/16 to about 400). A guess only,
// so the ladder's rounding does not matter; two barriers, no block-wide scan. Thread 0's
// result counts (kNoFloor: fewer than `rank` threads saw a token).
constexpr int kLadder = 64;
constexpr float kLadderBase = 0.0625f, kLog2LadderRatio = 0.20163386f;  // log2(1.15)
struct LadderShared {
  uint32_t count[kLadder];
  unsigned long long top;
};
template <uint32_t BLOCK>
__device__ __forceinline__ uint32_t guess_chunk_floor(unsigned long long mine,
                                                      unsigned long long top, uint32_t rank,
                                                      LadderShared& sh) {
  if (threadIdx.x == 0) sh.top = top;  // the block's max: thread 0's reduction result
  for (uint32_t j = threadIdx.x; j < kLadder; j += BLOCK) sh.count[j] = 0;
  __syncthreads();
  const float m = from_ordered_bits(static_cast<uint32_t>(sh.top >> 32));
  if (mine) {
    const float below = m - from_ordered_bits(static_cast<uint32_t>(mine >> 32));
    const float step = ceilf(log2f(below * (1.f / kLadderBase)) * (1.f / kLog2LadderRatio));
    atomicAdd(&sh.count[static_cast<int>(fminf(fmaxf(step, 0.f), kLadder - 1.f))], 1u);
  }
  __syncthreads();
  if (threadIdx.x != 0) return kNoFloor;
  uint32_t seen = 0;
  for (int j = 0; j < kLadder; ++j) {
    seen += sh.count[j];
    if (seen >= rank) return ordered_bits(m - kLadderBase * 1.001f * exp2f(j * kLog2LadderRatio));
  }
  return kNoFloor;
}

// Whether every row of the batch is greedy or keeps every token. Only then does launch 1
// draw the rows that keep every token: beside rows with a cut, their draw costs nothing in
// launch 2, which runs as long as those rows' histograms, and would lengthen launch 1
// (H200: the 8-setting menu +6 us at batch 64). Only the rows of this row's window of
// kBatchWindow are read, so the check costs each block a bounded read at any batch size;
// which launch draws a row never changes its token. Every thread of the block calls it.
constexpr uint32_t kBatchWindow = 1024;
template <uint32_t BLOCK, typename T>
__device__ __forceinline__ bool batch_only_keeps_all(const LogitsArgs<T>& a) {
  __shared__ uint32_t some_row_cuts;
  if (threadIdx.x == 0) some_row_cuts = 0;
  __syncthreads();
  const uint32_t first = blockIdx.x / kBatchWindow * kBatchWindow;
  const uint32_t end = min(first + kBatchWindow, gridDim.x);
  for (uint32_t r = first + threadIdx.x; r < end; r += BLOCK) {
    const RowPlan plan = plan_of(a, r);
    if (!plan.greedy && !plan.keeps_all) atomicOr(&some_row_cuts, 1u);
  }
  __syncthreads();
  return some_row_cuts == 0;
}

// Launch 1. At most 40 registers, for three blocks per multiprocessor (nvcc gives the
// one-pass draw 46, and two blocks, without the bound; it needs no spill at 40).
template <typename T>
__global__ void __launch_bounds__(kChunkThreads, 3) RowMaxKernel(LogitsArgs<T> a) {
  const uint32_t row = blockIdx.x, chunk = blockIdx.y;
  const RowPlan plan = plan_of(a, row);
  const uint32_t begin = chunk * a.chunk, end = min(begin + a.chunk, a.vocab);
  const size_t slot = chunk_base(a, row) + chunk;  // this block's entry of the chunk arrays
  const T* logits = a.logits + row * a.row_stride;
  unsigned long long best = 0;
  __shared__ uint32_t draw_floor;  // OnePassDraw's block floor
  // Only a row that may draw uses it, and batch_only_keeps_all syncs before any use.
  if (plan.keeps_all) open_block_floor(draw_floor);
  OnePassDraw draw(&draw_floor);
  const bool draws = plan.keeps_all && batch_only_keeps_all<kChunkThreads>(a);  // block-uniform
  // Two instances of the reading loop: the draw's code would slow the plain max. A row
  // that draws finds M as well: launch 2 needs it when it draws the row again.
  auto read = [&](auto drawing, uint64_t row_key) {
    for_each_logit<kChunkThreads>(logits, a.col_stride, begin, end, [&](uint32_t i, float x) {
      const float s = scaled_logit(x, plan.inv_temperature);
      const unsigned long long p = pack_best(s, i);
      best = p > best ? p : best;
      if constexpr (decltype(drawing)::value) draw.consider(row_key, i, s);
    });
  };
  if (draws) {
    read(std::true_type{}, row_key_of(a, row));
  } else {
    read(std::false_type{}, 0);
  }
  using Reduce = cub::BlockReduce<unsigned long long, kChunkThreads>;
  __shared__ typename Reduce::TempStorage reduce;
  const unsigned long long mine = best;
  best = Reduce(reduce).Reduce(best, MaxPacked());
  if (draws) {  // the chunk's winner, and the best rho of its other tokens
    __shared__ unsigned long long drawn;
    __shared__ typename cub::BlockReduce<uint32_t, kChunkThreads>::TempStorage reduce_rho;
    __syncthreads();  // `reduce` is reused
    const unsigned long long top = Reduce(reduce).Reduce(draw.best, MaxPacked());
    if (threadIdx.x == 0) drawn = top;
    __syncthreads();
    const float other = draw.best == drawn ? draw.runner_up : fmaxf(draw.runner_up, draw.best_rho);
    const uint32_t runner_up =
        cub::BlockReduce<uint32_t, kChunkThreads>(reduce_rho).Reduce(ordered_bits(other), MaxKey());
    if (threadIdx.x == 0) {
      a.chunk_draw[slot] = drawn;
      a.chunk_runner_up[slot] = runner_up;
    }
  } else if (plan.keeps_all && threadIdx.x == 0) {
    a.chunk_draw[slot] = 0;  // launch 2 draws
  }
  // A cut row's guessed floor (the rank-th largest thread maximum is at most the chunk's
  // rank-th largest s). Only a guess: launch 2 checks that it lies below the boundary.
  __shared__ LadderShared ladder;
  const uint32_t rank = a.early_list ? floor_rank(plan, a.vocab, a.chunks) : 0;  // block-uniform
  const uint32_t floor =
      rank ? guess_chunk_floor<kChunkThreads>(mine, best, rank, ladder) : kNoFloor;
  if (threadIdx.x == 0) {
    a.row_max[slot] = best;
    a.chunk_floor[slot] = floor;
  }
  // Each chunk zeroes its share of the row's workspace for launch 2.
  if (!plan.greedy) {
    uint32_t* words = reinterpret_cast<uint32_t*>(a.work + row);
    const uint32_t n = sizeof(RowWork) / sizeof(uint32_t);
    const uint32_t per = (n + a.chunks - 1) / a.chunks;
    for (uint32_t w = chunk * per + threadIdx.x; w < min(n, (chunk + 1) * per);
         w += kChunkThreads) {
      words[w] = 0;
    }
  }
}

__device__ __forceinline__ void atomic_max_of(uint32_t* address, uint32_t value) {
  atomicMax(address, value);
}
__device__ __forceinline__ void atomic_max_of(unsigned long long* address,
                                              unsigned long long value) {
  atomic_max_packed(address, value);
}

// The largest of value_of(c) over the row's chunks c (0 when none is above 0), through a
// shared slot of its own; every thread of the block calls it.
template <uint32_t BLOCK, typename V, typename F>
__device__ __forceinline__ V max_over_chunks(uint32_t chunks, V* shared_slot, F&& value_of) {
  V best = 0;
  for (uint32_t c = threadIdx.x; c < chunks; c += BLOCK) {
    const V v = value_of(c);
    best = v > best ? v : best;
  }
  if (threadIdx.x == 0) *shared_slot = 0;
  __syncthreads();
  if (best) atomic_max_of(shared_slot, best);
  __syncthreads();
  return *shared_slot;
}

// The row's M (largest scaled logit) and argmax from launch 1's chunk results.
template <uint32_t BLOCK, typename T>
__device__ __forceinline__ unsigned long long row_max_of(const LogitsArgs<T>& a, uint32_t row,
                                                         unsigned long long* shared_slot) {
  const unsigned long long* chunk_max = a.row_max + chunk_base(a, row);
  return max_over_chunks<BLOCK>(a.chunks, shared_slot, [&](uint32_t c) { return chunk_max[c]; });
}

// A keeps_all row's token from launch 1's chunk results, when the runner-up lies more than
// half of one_pass_margin below the winner (OnePassDraw): the same in every block of the
// row. 0 when it does not, or when launch 1 did not draw (batch_only_keeps_all): launch 2
// draws the row.
template <uint32_t BLOCK, typename T>
__device__ __forceinline__ unsigned long long one_pass_winner(const LogitsArgs<T>& a, uint32_t row,
                                                              unsigned long long* winner_slot,
                                                              uint32_t* runner_up_slot) {
  const unsigned long long* drawn = a.chunk_draw + chunk_base(a, row);
  const uint32_t* runner_up = a.chunk_runner_up + chunk_base(a, row);
  const unsigned long long winner =
      max_over_chunks<BLOCK>(a.chunks, winner_slot, [&](uint32_t c) { return drawn[c]; });
  if (!winner) return 0;  // launch 1 did not draw (block-uniform)
  const uint32_t other = max_over_chunks<BLOCK>(a.chunks, runner_up_slot, [&](uint32_t c) {
    // another chunk's winner is a runner-up too
    return drawn[c] == winner ? runner_up[c]
                              : max(runner_up[c], static_cast<uint32_t>(drawn[c] >> 32));
  });
  const double top = from_ordered_bits(static_cast<uint32_t>(winner >> 32));
  // Exact in double unless their exponents differ by more than 29: far beyond the margin.
  const double gap = top - static_cast<double>(from_ordered_bits(other));
  return gap > (fabs(top) + 256.0) * 0x1p-20 ? winner : 0;
}

// A thread's tokens for launch 2's early list, held in registers while it reads (a store
// or an atomic in the reading loop slows launch 2 by a fifth), appended to the row's list
// after it. A thread with more than kHeld of them marks the list overflowed instead.
constexpr uint32_t kHeld = 4;
struct EarlyHits {
  uint32_t count = 0, id0 = 0, id1 = 0, id2 = 0, id3 = 0;
  float d0 = 0, d1 = 0, d2 = 0, d3 = 0;
  __device__ __forceinline__ void add(uint32_t id, float d) {
    if (count == 0) id0 = id, d0 = d;
    if (count == 1) id1 = id, d1 = d;
    if (count == 2) id2 = id, d2 = d;
    if (count == 3) id3 = id, d3 = d;
    ++count;
  }
  __device__ __forceinline__ void append_to(FloorList& list, uint32_t& taken) const {
    if (count == 0) return;
    if (count > kHeld) {
      atomicAdd(&taken, kFloorList + 1);  // more than the list holds: not used
      return;
    }
    const uint32_t at = atomicAdd(&taken, count);
    const uint32_t ids[kHeld] = {id0, id1, id2, id3};
    const float ds[kHeld] = {d0, d1, d2, d3};
#pragma unroll
    for (uint32_t j = 0; j < kHeld; ++j) {
      if (j < count && at + j < kFloorList) {
        list.id[at + j] = ids[j];
        list.d[at + j] = ds[j];
      }
    }
  }
};

// The row's guessed floor (ordered bits of s): the largest of launch 1's chunk floors, each
// a lower bound of its chunk's rank-th s, so at least `rank` tokens of the row are at or
// above it. kNoFloor when the row has none.
template <uint32_t BLOCK, typename T>
__device__ __forceinline__ uint32_t row_floor_of(const LogitsArgs<T>& a, uint32_t row,
                                                 uint32_t* shared_slot) {
  const uint32_t* chunk_floor = a.chunk_floor + chunk_base(a, row);
  return max_over_chunks<BLOCK>(a.chunks, shared_slot, [&](uint32_t c) { return chunk_floor[c]; });
}

// One level's bin choice: shared memory for the scan over a block's threads, and the result.
template <uint32_t BLOCK>
struct BinScan {
  uint32_t count[BLOCK];
  double mass[BLOCK];
};
struct BinChoice {
  uint32_t bin;  // kNone: no bin qualifies
  uint32_t above_count, bin_count;
  double above_mass, bin_mass;
};

// One level of the search: thread t owns the bins (its `owned` entries, highest first) with
// (count, mass); picks the lowest bin that keeps its first token (fewer than k above it,
// at most `limit` mass above it) and records it in `choice`. Returns false when no bin
// qualifies (nothing is kept). The first level sets `limit` = p * the row's total.
template <uint32_t BLOCK, int OWNED>
__device__ __forceinline__ bool choose_bin(BinScan<BLOCK>& scan, BinChoice& choice,
                                           const uint32_t (&bin)[OWNED],
                                           const uint32_t (&count)[OWNED],
                                           const double (&mass)[OWNED], uint32_t above_count,
                                           double above_mass, const RowPlan& plan, bool cuts_p,
                                           bool first_level, double& limit) {
  uint32_t my_count = 0;
  double my_mass = 0;
#pragma unroll
  for (int j = 0; j < OWNED; ++j) {
    my_count += count[j];
    my_mass += mass[j];
  }
  uint32_t count_before;
  double mass_before;
  const double total = block_exclusive_scan<BLOCK>(scan.count, scan.mass, my_count, my_mass,
                                                   count_before, mass_before);
  if (first_level) limit = static_cast<double>(plan.top_p) * total;  // level 0's total is S
  if (threadIdx.x == 0) choice.bin = kNone;
  __syncthreads();
  uint32_t c = above_count + count_before;
  double m = above_mass + mass_before;
  uint32_t bin_above_count[OWNED];
  double bin_above_mass[OWNED];
#pragma unroll
  for (int j = 0; j < OWNED; ++j) {
    bin_above_count[j] = c;
    bin_above_mass[j] = m;
    const bool qualifies = bin[j] != kNone && count[j] > 0 && static_cast<int64_t>(c) < plan.k &&
                           !(cuts_p && m > limit);
    if (qualifies) atomicMin(&choice.bin, bin[j]);
    c += count[j];
    m += mass[j];
  }
  __syncthreads();
  const uint32_t chosen = choice.bin;
  if (chosen == kNone) return false;
#pragma unroll
  for (int j = 0; j < OWNED; ++j) {
    if (bin[j] == chosen) {
      choice.above_count = bin_above_count[j];
      choice.above_mass = bin_above_mass[j];
      choice.bin_count = count[j];
      choice.bin_mass = mass[j];
    }
  }
  __syncthreads();
  return true;
}

// Called by thread 0 of each of a row's `blocks` blocks with its block's best (packed key,
// id; 0: none): the row's best is their max, and the last block to count (a counter, no
// waiting) writes the row's token, 0 when nothing was kept.
__device__ __forceinline__ void add_best_and_finish(RowWork& w, uint32_t& done, uint32_t blocks,
                                                    unsigned long long best, int32_t* token) {
  if (best) atomic_max_packed(&w.row_best, best);
  __threadfence();  // the max is visible before this block counts as done
  if (atomicAdd(&done, 1u) != blocks - 1) return;
  __threadfence();
  const unsigned long long winner = atomic_read(&w.row_best);
  *token = winner ? static_cast<int32_t>(packed_id(winner)) : 0;
}

// Launch 2. Writes the token of greedy rows and rows without a cut. The row's last block
// to add its histogram chooses level 0's bin.
// kEarlyList: the instance that lists (a.early_list); the other has none of its code,
// as the reading loop is close to bound by instructions.
template <typename T, bool kEarlyList>
__global__ void __launch_bounds__(kChunkThreads) RowHistogramKernel(LogitsArgs<T> a) {
  const uint32_t row = blockIdx.x, chunk = blockIdx.y, tid = threadIdx.x;
  const RowPlan plan = plan_of(a, row);
  __shared__ unsigned long long max_slot;
  if (plan.greedy) {  // the argmax, from launch 1's chunk maxima
    if (chunk != 0) return;
    const unsigned long long top = row_max_of<kChunkThreads>(a, row, &max_slot);
    // top_k == 1 keeps the argmax unless top-p < 0 or min-p > 1 cut it.
    const bool kept =
        !(a.temperature[row] > 0.f) || (!(plan.top_p < 0.f) && plan.min_key <= 0x3F800000u);
    if (tid == 0) a.output[row] = kept ? static_cast<int32_t>(packed_id(top)) : 0;
    return;
  }
  __shared__ union {
    struct {
      uint32_t count[kBins0], mass_high[kBins0], mass_low[kBins0];
    } hist;
    BinScan<kChunkThreads> scan;
  } sh;
  __shared__ typename cub::BlockReduce<unsigned long long, kChunkThreads>::TempStorage reduce;
  __shared__ BinChoice choice;
  __shared__ bool last;
  __shared__ uint32_t floor;  // GumbelMax's block floor
  open_block_floor(floor);    // row_max_of syncs before any use
  if (plan.keeps_all) {       // launch 1 drew it; draw again only when it could not tell
    __shared__ unsigned long long winner_slot;
    __shared__ uint32_t runner_up_slot;
    const unsigned long long winner =
        one_pass_winner<kChunkThreads>(a, row, &winner_slot, &runner_up_slot);
    if (winner) {
      if (chunk == 0 && tid == 0) a.output[row] = static_cast<int32_t>(packed_id(winner));
      return;
    }
  }
  const float m =
      from_ordered_bits(static_cast<uint32_t>(row_max_of<kChunkThreads>(a, row, &max_slot) >> 32));
  __shared__ uint32_t row_floor_slot;
  const uint32_t begin = chunk * a.chunk, end = min(begin + a.chunk, a.vocab);
  const T* logits = a.logits + row * a.row_stride;
  RowWork& w = a.work[row];
  if (!plan.cuts) {
    // Kept: w >= min-p's threshold (any w > 0 without min-p). Only the best key matters.
    const uint64_t row_key = row_key_of(a, row);
    const WeightCut cut(plan.min_key);
    GumbelMax mine(&floor);
    for_each_logit<kChunkThreads>(logits, a.col_stride, begin, end, [&](uint32_t i, float x) {
      const float d = scaled_logit(x, plan.inv_temperature) - m;
      if (cut.keeps(d, plan.min_key)) mine.consider(row_key, i, d);
    });
    const unsigned long long best =
        cub::BlockReduce<unsigned long long, kChunkThreads>(reduce).Reduce(mine.best, MaxPacked());
    if (tid == 0) add_best_and_finish(w, w.hist_done, a.chunks, best, a.output + row);
    return;
  }
  for (uint32_t b = tid; b < kBins0; b += kChunkThreads) {
    sh.hist.count[b] = sh.hist.mass_high[b] = sh.hist.mass_low[b] = 0;
  }
  __syncthreads();  // every bin zeroed before any thread adds to it (both instances)
  // The early list takes the tokens in level-0 bins at or above the floor's (kNone: none
  // without a floor). The same in every block of the row: the same floor, M and expf.
  uint32_t floor_bin = kNone;
  if constexpr (kEarlyList) {
    const uint32_t row_floor = row_floor_of<kChunkThreads>(a, row, &row_floor_slot);
    if (row_floor != kNoFloor && row_floor >= ordered_bits(-FLT_MAX)) {
      floor_bin = max(weight_key(expf(from_ordered_bits(row_floor) - m)) >> kShift0, 1u);
    }
  }
  // Only top-p reads the bins' masses: a top-k-only row adds counts alone (a third of the
  // atomics). Its masses stay 0, and nothing reads them.
  const bool cuts_p = plan.top_p < 1.f;
  // Two instances of the reading loop: the early list's test would cost a row without a
  // floor too.
  EarlyHits early;
  auto add_chunk = [&](auto listing) {
    for_each_logit<kChunkThreads>(logits, a.col_stride, begin, end, [&](uint32_t i, float x) {
      const float d = scaled_logit(x, plan.inv_temperature) - m;
      const uint32_t key = weight_key(expf(d));
      if (key == 0) return;  // weight 0: never kept
      const uint32_t b = key >> kShift0;
      atomicAdd(&sh.hist.count[b], 1u);
      if (decltype(listing)::value && b >= floor_bin) early.add(i, d);
      if (cuts_p) {
        const uint32_t mantissa = (key & 0x7FFFFFu) | ((key >> 23) ? 0x800000u : 0u);
        atomicAdd(&sh.hist.mass_high[b], mantissa >> 12);
        atomicAdd(&sh.hist.mass_low[b], mantissa & 0xFFFu);
      }
    });
  };
  if (kEarlyList && floor_bin != kNone) {
    add_chunk(std::integral_constant<bool, kEarlyList>{});
    early.append_to(a.floor_list[row], w.floor_taken);
  } else {
    add_chunk(std::false_type{});
  }
  __syncthreads();
  for (uint32_t b = tid; b < kBins0; b += kChunkThreads) {
    if (sh.hist.count[b] == 0) continue;
    atomicAdd(&w.u.hist.count[b], sh.hist.count[b]);
    if (cuts_p) {
      atomicAdd(&w.u.hist.mass_high[b], sh.hist.mass_high[b]);
      atomicAdd(&w.u.hist.mass_low[b], sh.hist.mass_low[b]);
    }
  }
  // The last block of the row to get here sees every block's sums (a counter, no waiting).
  __threadfence();
  __syncthreads();
  if (tid == 0) last = atomicAdd(&w.hist_done, 1u) == a.chunks - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  // Level 0 (bits 29..19 of w): thread t owns bins 2047 - 4t down to 2044 - 4t.
  constexpr int kOwned = kBins0 / kChunkThreads;
  static_assert(kOwned * kChunkThreads == kBins0, "launch 2: the threads own every bin");
  const volatile RowWork& sums = w;  // other blocks' atomics: read from L2, not a stale line
  uint32_t bin[kOwned], count[kOwned];
  double mass[kOwned];
#pragma unroll
  for (int j = 0; j < kOwned; ++j) {
    bin[j] = kBins0 - 1 - (kOwned * tid + j);
    count[j] = sums.u.hist.count[bin[j]];
    mass[j] = (4096.0 * sums.u.hist.mass_high[bin[j]] + sums.u.hist.mass_low[bin[j]]) *
              mantissa_unit(bin[j] >> (23 - kShift0));
  }
  double limit = 0;
  const bool kept = choose_bin<kChunkThreads, kOwned>(sh.scan, choice, bin, count, mass, 0, 0.0,
                                                      plan, cuts_p, true, limit);
  if (tid == 0) {
    w.chosen_bin = kept ? choice.bin : kNone;
    w.above_count = choice.above_count;
    w.bin_count = choice.bin_count;
    w.above_mass = choice.above_mass;
    w.bin_mass = choice.bin_mass;
    w.limit = limit;
    // The early list holds every token at or above the bin when it did not overflow and
    // the bin is at or above the floor's.
    w.prebuffered = kept && sums.floor_taken <= kFloorList && choice.bin >= floor_bin;
  }
}

struct SelectShared {
  union {
    struct {
      uint32_t count[128];
      uint32_t mass_high[128];
      uint32_t mass_low[128];
    } hist;  // a deeper level's bins
    BinScan<kSelectThreads> scan;
    uint32_t tie_ids[kTieList];  // the boundary value's run, when it is this short
  } work;
  uint32_t buffer_id[kBuffer];
  float buffer_d[kBuffer];  // s - M of the buffered token
  typename cub::BlockReduce<unsigned long long, kSelectThreads>::TempStorage reduce;
  unsigned long long packed;
  BinChoice choice;
  uint32_t buffered;  // tokens in the buffer
  uint32_t tie_count, tie_cut;
  uint32_t floor;  // GumbelMax's block floor
  bool last;       // this block is the row's last to finish collecting
};

// Copies n listed tokens (ids, d = s - M) to launch 3's buffer in shared memory.
template <typename Ids, typename Ds>
__device__ __forceinline__ void buffer_tokens(SelectShared& s, Ids ids, Ds ds, uint32_t n) {
  for (uint32_t c = threadIdx.x; c < n; c += kSelectThreads) {
    s.buffer_id[c] = ids[c];
    s.buffer_d[c] = ds[c];
  }
  if (threadIdx.x == 0) s.buffered = n;
}

// Launch 3, (row, chunk) blocks, for rows with a top-k or top-p cut: each block collects
// its chunk's tokens at or above level 0's bin into the row's candidate list when they all
// fit kRowCandidates, else those of the bin alone when they fit; the row's last block to
// finish (a counter, no waiting) copies them to shared memory and does the deeper levels
// and the tie without reading the row, and the draw too when it has every token at or
// above the bin (else launch 4 draws). A row whose boundary bin alone does not fit: the
// last block reads the row level by level until the boundary's tokens fit its buffer, and
// launch 4 draws.
// kDrawAbove: the instance for one block per row (a.split_select false), the only one that
// draws above a bin as it reads; the other has none of that code (it slows launch 3 by
// 2-3 us at batch 1 on the H200).
template <typename T, bool kDrawAbove>
__global__ void __launch_bounds__(kSelectThreads) RowSelectKernel(LogitsArgs<T> a) {
  __shared__ SelectShared s;
  const uint32_t row = blockIdx.x, chunk = blockIdx.y, tid = threadIdx.x;
  const RowPlan plan = plan_of(a, row);
  RowWork& w = a.work[row];
  if (plan.greedy || !plan.cuts) return;  // launch 2 wrote their token
  const uint32_t lowest = w.chosen_bin;
  if (lowest == kNone) {  // level 0 kept nothing (k <= 0 or p < 0)
    if (chunk == 0 && tid == 0) a.output[row] = 0;
    return;
  }
  const unsigned long long top = row_max_of<kSelectThreads>(a, row, &s.packed);
  const float m = from_ordered_bits(static_cast<uint32_t>(top >> 32));
  const T* logits = a.logits + row * a.row_stride;
  const bool cuts_k = plan.k < static_cast<int64_t>(a.vocab);
  const bool cuts_p = plan.top_p < 1.f;
  // Launch 2's early list, when it holds every token at or above the boundary bin: one
  // block of the row does the rest, reading nothing of the row.
  const bool prebuffered = w.prebuffered;
  // Else every token at or above the boundary bin when they fit (top-k rows): the last
  // block draws too; else the bin's own tokens when they fit (most top-p rows). Launch 2
  // counted them exactly, so the slots never run out (checked anyway).
  const bool all_buffered = prebuffered || w.above_count + w.bin_count <= kRowCandidates;
  const bool bin_buffered = all_buffered || w.bin_count <= kRowCandidates;
  const uint32_t end_bin = all_buffered ? kBins0 : lowest + 1;  // collect bins [lowest, end_bin)
  const bool draws_above =
      kDrawAbove && !all_buffered && bin_buffered && w.above_count <= kDrawAboveMax;
  if (prebuffered) {
    if (chunk != 0) return;
  } else if (bin_buffered) {
    // When only the bin's tokens are collected, every token above the bin is kept (min-p
    // aside): with draws_above each block draws among its chunk's while it reads, into the
    // row's best, and the last block adds the bin's kept tokens. No launch 4 for the row.
    const uint32_t begin = chunk * a.select_chunk, end = min(begin + a.select_chunk, a.vocab);
    const WeightCut cut(lowest << kShift0);  // most tokens lie below the bin: no expf
    // Two instances of the reading loop: the draw's code would slow the plain collection.
    auto collect = [&](auto draw_above, GumbelMax* above, uint64_t row_key) {
      for_each_logit<kSelectThreads>(logits, a.col_stride, begin, end, [&](uint32_t i, float x) {
        const float d = scaled_logit(x, plan.inv_temperature) - m;
        if (d < cut.surely_out) return;
        const uint32_t key = weight_key(expf(d));
        const uint32_t bin = key >> kShift0;
        if (key != 0 && bin >= lowest && bin < end_bin) {
          const uint32_t slot = atomicAdd(&w.candidates_taken, 1u);
          if (slot < kRowCandidates) {
            w.u.candidates.id[slot] = i;
            w.u.candidates.d[slot] = d;
          }
        } else if constexpr (decltype(draw_above)::value) {
          if (bin >= end_bin && key >= plan.min_key) above->consider(row_key, i, d);
        }
      });
    };
    if (draws_above) {
      open_block_floor(s.floor);
      __syncthreads();
      GumbelMax above(&s.floor);
      collect(std::integral_constant<bool, kDrawAbove>{}, &above, row_key_of(a, row));
      const unsigned long long best =
          cub::BlockReduce<unsigned long long, kSelectThreads>(s.reduce).Reduce(above.best,
                                                                                MaxPacked());
      if (tid == 0 && best) atomic_max_packed(&w.row_best, best);
    } else {
      collect(std::false_type{}, nullptr, 0);
    }
  }
  if (!prebuffered) {
    __threadfence();
    __syncthreads();
    if (tid == 0) s.last = atomicAdd(&w.collect_done, 1u) == a.select_chunks - 1;
    __syncthreads();
    if (!s.last) return;
    __threadfence();
  }

  // The row's last block (an early-listed row's only one): level 0's choice from launch 2,
  // the candidates from launch 2's early list or from this launch.
  double limit = w.limit;
  uint32_t prefix = 0, above_count = 0;
  double above_mass = 0;
  bool nothing_kept = false;
  uint32_t threshold = 0, tie_key = kNone, tie_keep = 0;
  if (tid == 0) {
    s.choice = BinChoice{lowest, w.above_count, w.bin_count, w.above_mass, w.bin_mass};
    s.buffered = 0;
  }
  if (prebuffered) {  // written by launch 2: plain reads; at most kFloorList (launch 2 checked)
    const FloorList& list = a.floor_list[row];
    buffer_tokens(s, list.id, list.d, w.floor_taken);
  } else if (bin_buffered) {
    const volatile RowWork& list = w;  // other blocks' writes: read from L2
    buffer_tokens(s, list.u.candidates.id, list.u.candidates.d,
                  min(list.candidates_taken, kRowCandidates));
  }
  __syncthreads();
  // Deeper levels inside the boundary bin, from the buffer, or from the row until the
  // current prefix's tokens fit in the buffer (collected by the first row pass that can).
  bool buffered = bin_buffered;
  // Calls f(id, d) for the buffered tokens when they hold every token looked for (buffered),
  // else for every token of the row.
  auto for_each_token = [&](auto&& f) {
    if (buffered) {
      for (uint32_t c = tid; c < s.buffered; c += kSelectThreads) f(s.buffer_id[c], s.buffer_d[c]);
    } else {
      for_each_logit<kSelectThreads>(logits, a.col_stride, 0u, a.vocab, [&](uint32_t i, float x) {
        f(i, scaled_logit(x, plan.inv_temperature) - m);
      });
    }
  };
  for (int level = 0; !nothing_kept; ++level) {
    const uint32_t shift = logits_level_shift(level);
    prefix |= s.choice.bin << shift;
    above_count = s.choice.above_count;
    above_mass = s.choice.above_mass;
    const uint32_t bin_count = s.choice.bin_count;
    const bool whole_by_k = !cuts_k || static_cast<int64_t>(above_count) + bin_count <= plan.k;
    const bool whole_by_p = !cuts_p || !(above_mass + s.choice.bin_mass > limit);
    if (whole_by_k && whole_by_p) {
      threshold = prefix;
      break;
    }
    if (level == kLogitsLevels - 1) {  // prefix is the boundary value; how much of its run?
      threshold = prefix;
      uint64_t keep = bin_count;
      if (cuts_k) {
        const uint64_t room_k = static_cast<uint64_t>(plan.k - static_cast<int64_t>(above_count));
        keep = room_k < keep ? room_k : keep;
      }
      if (cuts_p) {
        const double room = (limit - above_mass) / static_cast<double>(__uint_as_float(prefix));
        if (room < static_cast<double>(keep)) keep = static_cast<uint64_t>(floor(room)) + 1;
      }
      if (keep < bin_count) {
        tie_key = prefix;
        tie_keep = static_cast<uint32_t>(keep);
      }
      break;
    }
    // Histogram of the next level among the tokens under `prefix` (bits above `shift`).
    const uint32_t next_shift = logits_level_shift(level + 1);
    const uint32_t next_bins = logits_level_bins(level + 1);
    const bool collect = !buffered && bin_count <= kBuffer;
    if (tid < 128) {
      s.work.hist.count[tid] = s.work.hist.mass_high[tid] = s.work.hist.mass_low[tid] = 0;
    }
    if (tid == 0 && collect) s.buffered = 0;
    __syncthreads();
    auto add = [&](uint32_t id, float d) {
      const uint32_t key = weight_key(expf(d));
      if (key == 0 || (key >> shift) != (prefix >> shift)) return;
      if (collect) {
        const uint32_t slot = atomicAdd(&s.buffered, 1u);
        s.buffer_id[slot] = id;
        s.buffer_d[slot] = d;
      }
      const uint32_t b = (key >> next_shift) & (next_bins - 1);
      atomicAdd(&s.work.hist.count[b], 1u);
      if (cuts_p) {  // masses only for top-p, as in launch 2
        const uint32_t mantissa = (key & 0x7FFFFFu) | ((key >> 23) ? 0x800000u : 0u);
        atomicAdd(&s.work.hist.mass_high[b], mantissa >> 12);
        atomicAdd(&s.work.hist.mass_low[b], mantissa & 0xFFFu);
      }
    };
    for_each_token(add);
    __syncthreads();
    buffered = buffered || collect;
    uint32_t bin[1] = {kNone}, count[1] = {0};
    double mass[1] = {0};
    if (tid < next_bins) {
      bin[0] = next_bins - 1 - tid;
      count[0] = s.work.hist.count[bin[0]];
      mass[0] = (4096.0 * s.work.hist.mass_high[bin[0]] + s.work.hist.mass_low[bin[0]]) *
                mantissa_unit(prefix >> 23);
    }
    nothing_kept =
        !choose_bin<kSelectThreads, 1>(s.work.scan, s.choice, bin, count, mass, above_count,
                                       above_mass, plan, cuts_p, false, limit);
  }
  // An empty kept set happens only at level 0 (k <= 0, p < 0): the deeper levels always
  // find the boundary bin's first token kept.

  // min-p: a second lower bound; it voids the tie rule when it lies above the run.
  if (plan.min_key > threshold) {
    threshold = plan.min_key;
    tie_key = kNone;
  }
  auto entry = [&](uint32_t i) {
    return scaled_logit(static_cast<float>(logits[static_cast<int64_t>(i) * a.col_stride]),
                        plan.inv_temperature) -
           m;
  };
  // Tie: the tie_keep-th lowest id of the run key == tie_key. The run's ids are gathered
  // (from the buffer, which holds the whole run, or in one coalesced row pass) and ranked
  // in shared memory; a run longer than kTieList (rows of equal logits) is found instead
  // by counting the run in each thread's slice of the row and one scan over the slices.
  uint32_t tie_cut = kNone;
  if (!nothing_kept && tie_key != kNone) {
    if (tid == 0) {
      s.tie_cut = kNone;
      s.tie_count = 0;
    }
    __syncthreads();
    auto gather = [&](uint32_t id, float d) {
      if (weight_key(expf(d)) != tie_key) return;
      const uint32_t slot = atomicAdd(&s.tie_count, 1u);
      if (slot < kTieList) s.work.tie_ids[slot] = id;
    };
    for_each_token(gather);
    __syncthreads();
    const uint32_t run = s.tie_count;
    if (run <= kTieList) {
      for (uint32_t c = tid; c < run; c += kSelectThreads) {
        const uint32_t id = s.work.tie_ids[c];
        uint32_t smaller = 0;
        for (uint32_t o = 0; o < run; ++o) smaller += s.work.tie_ids[o] < id;
        if (smaller + 1 == tie_keep) s.tie_cut = id;
      }
    } else {
      const uint32_t slice = (a.vocab + kSelectThreads - 1) / kSelectThreads;
      const uint32_t begin = min(tid * slice, a.vocab), end = min(begin + slice, a.vocab);
      uint32_t mine = 0;
      for (uint32_t i = begin; i < end; ++i) mine += weight_key(expf(entry(i))) == tie_key;
      uint32_t before;
      double unused_mass;
      block_exclusive_scan<kSelectThreads>(s.work.scan.count, s.work.scan.mass, mine, 0.0, before,
                                           unused_mass);
      if (before < tie_keep && tie_keep <= before + mine) {
        uint32_t seen = before;
        for (uint32_t i = begin; i < end; ++i) {
          if (weight_key(expf(entry(i))) == tie_key && ++seen == tie_keep) {
            s.tie_cut = i;
            break;
          }
        }
      }
    }
    __syncthreads();
    tie_cut = s.tie_cut;
  }

  // Gumbel-max over the kept tokens: here from the buffer when it holds every token at or
  // above the boundary bin, or the bin's (the blocks drew above it, into the row's best);
  // otherwise launch 4 draws from the row, split across blocks.
  if (!nothing_kept && !all_buffered && !draws_above) {
    if (tid == 0) {
      w.threshold = threshold;
      w.tie_key = tie_key;
      w.tie_cut = tie_cut;
      w.needs_draw = 1;
    }
    return;
  }
  open_block_floor(s.floor);
  __syncthreads();
  GumbelMax mine(&s.floor);
  if (!nothing_kept) {
    const uint64_t row_key = row_key_of(a, row);
    for (uint32_t c = tid; c < s.buffered; c += kSelectThreads) {
      const uint32_t i = s.buffer_id[c];
      const float d = s.buffer_d[c];
      const uint32_t key = weight_key(expf(d));
      if (key >= threshold && !(key == tie_key && i > tie_cut)) mine.consider(row_key, i, d);
    }
  }
  unsigned long long best =
      cub::BlockReduce<unsigned long long, kSelectThreads>(s.reduce).Reduce(mine.best, MaxPacked());
  if (tid == 0) {
    if (!nothing_kept && draws_above) {  // the draws above the bin, every block's
      const unsigned long long above = atomic_read(&w.row_best);
      best = above > best ? above : best;
    }
    a.output[row] = best ? static_cast<int32_t>(packed_id(best)) : 0;
  }
}

// Launch 4: the draw of the rows launch 3 left (their kept tokens did not fit its buffer),
// one chunk per block; the row's last block to finish writes the token (a counter, no
// waiting: whichever block is last reads the others' results).
template <typename T>
__global__ void __launch_bounds__(kChunkThreads) RowDrawKernel(LogitsArgs<T> a) {
  const uint32_t row = blockIdx.x, chunk = blockIdx.y;
  RowWork& w = a.work[row];
  const RowPlan plan = plan_of(a, row);
  if (plan.greedy || !plan.cuts || !w.needs_draw) return;
  __shared__ unsigned long long max_slot;
  __shared__ typename cub::BlockReduce<unsigned long long, kChunkThreads>::TempStorage reduce;
  __shared__ uint32_t floor;  // GumbelMax's block floor
  open_block_floor(floor);    // row_max_of syncs before any use
  const float m =
      from_ordered_bits(static_cast<uint32_t>(row_max_of<kChunkThreads>(a, row, &max_slot) >> 32));
  const uint64_t row_key = row_key_of(a, row);
  const uint32_t threshold = w.threshold, tie_key = w.tie_key, tie_cut = w.tie_cut;
  const uint32_t begin = chunk * a.chunk, end = min(begin + a.chunk, a.vocab);
  const WeightCut cut(threshold);  // most tokens of a top-p row lie below it: no expf
  GumbelMax mine(&floor);
  for_each_logit<kChunkThreads>(a.logits + row * a.row_stride, a.col_stride, begin, end,
                                [&](uint32_t i, float x) {
                                  const float d = scaled_logit(x, plan.inv_temperature) - m;
                                  if (d < cut.surely_out) return;
                                  const uint32_t key = weight_key(expf(d));
                                  if (key >= threshold && !(key == tie_key && i > tie_cut)) {
                                    mine.consider(row_key, i, d);
                                  }
                                });
  const unsigned long long best =
      cub::BlockReduce<unsigned long long, kChunkThreads>(reduce).Reduce(mine.best, MaxPacked());
  if (threadIdx.x == 0) add_best_and_finish(w, w.chunks_done, a.chunks, best, a.output + row);
}

// Blocks per row: enough (row, chunk) blocks to fill every multiprocessor (four blocks of
// 512 threads each), each chunk at least kMinChunk tokens; 1 when the batch alone does.
inline uint32_t logits_chunks(uint32_t rows, uint32_t vocab, int multiprocessors) {
  const uint64_t want = 4ull * static_cast<uint64_t>(multiprocessors > 0 ? multiprocessors : 1);
  const uint32_t by_batch = static_cast<uint32_t>((want + rows - 1) / rows);
  const uint32_t by_vocab = (vocab + kMinChunk - 1) / kMinChunk;
  const uint32_t g = by_batch < by_vocab ? by_batch : by_vocab;
  return g > 0 ? g : 1;
}

// Whether launch 3 collects a row's candidates with all G blocks or one: split only while
// the batch leaves three quarters of the multiprocessors without a row.
// On the H200 the split halves launch 3 for top-k rows at batch 1 to 8 and costs 5-10%
// at 64 and 256 (its last-block handoff and the G-fold blocks). Changes no token.
inline bool logits_split_select(uint32_t rows, int multiprocessors) {
  return static_cast<int64_t>(rows) * 4 <= static_cast<int64_t>(multiprocessors);
}

// Workspace bytes for `rows` rows split into `chunks`.
inline size_t logits_workspace_bytes(uint32_t rows, uint32_t chunks) {
  return static_cast<size_t>(rows) * (sizeof(RowWork) + sizeof(FloorList) +
                                      chunks * 2 * (sizeof(unsigned long long) + sizeof(uint32_t)));
}

// Fills in what the launches derive from the caller's arguments: the workspace pointers and
// the chunk sizes of launches 1, 2, 4 and of launch 3. The caller has checked every argument
// and provides a workspace of logits_workspace_bytes(rows, chunks) bytes (any contents).
template <typename T>
void plan_logits_launches(LogitsArgs<T>& a, uint32_t rows, void* workspace) {
  a.work = static_cast<RowWork*>(workspace);
  a.floor_list = reinterpret_cast<FloorList*>(a.work + rows);
  a.row_max = reinterpret_cast<unsigned long long*>(a.floor_list + rows);
  const uint32_t per_chunk = (a.vocab + a.chunks - 1) / a.chunks;
  a.chunk = (per_chunk + 15u) / 16u * 16u;
  a.chunks = (a.vocab + a.chunk - 1) / a.chunk;
  a.select_chunks = a.split_select ? a.chunks : 1;
  a.select_chunk = a.split_select ? a.chunk : a.vocab;
  const size_t per_chunk_values = static_cast<size_t>(rows) * a.chunks;
  a.chunk_draw = a.row_max + per_chunk_values;
  a.chunk_floor = reinterpret_cast<uint32_t*>(a.chunk_draw + per_chunk_values);
  a.chunk_runner_up = a.chunk_floor + per_chunk_values;
  a.early_list = rows >= kEarlyListRows;
  a.may_cut = a.top_k != nullptr || a.top_p != nullptr;
}

// Launch `step` (0 to 3) of the four, with the instances the plan asks for (a planned by
// plan_logits_launches). The per-launch timer calls it step by step.
template <typename T>
void launch_logits_step(int step, const LogitsArgs<T>& a, uint32_t rows, cudaStream_t stream) {
  if (step >= 2 && !a.may_cut) return;  // launch 2 wrote every row's token
  const dim3 split(rows, a.chunks), select(rows, a.select_chunks);
  if (step == 0) {
    RowMaxKernel<T><<<split, kChunkThreads, 0, stream>>>(a);
  } else if (step == 1) {
    if (a.early_list) {
      RowHistogramKernel<T, true><<<split, kChunkThreads, 0, stream>>>(a);
    } else {
      RowHistogramKernel<T, false><<<split, kChunkThreads, 0, stream>>>(a);
    }
  } else if (step == 2) {
    if (a.split_select) {
      RowSelectKernel<T, false><<<select, kSelectThreads, 0, stream>>>(a);
    } else {
      RowSelectKernel<T, true><<<select, kSelectThreads, 0, stream>>>(a);
    }
  } else {
    RowDrawKernel<T><<<split, kChunkThreads, 0, stream>>>(a);
  }
}

// Launches the four kernels on `stream` (arguments as plan_logits_launches takes them).
template <typename T>
cudaError_t TopKTopPMinPSamplingFromLogits(LogitsArgs<T> a, uint32_t rows, void* workspace,
                                           cudaStream_t stream) {
  plan_logits_launches(a, rows, workspace);
  for (int step = 0; step < 4; ++step) launch_logits_step(step, a, rows, stream);
  return cudaGetLastError();
}

}  // namespace sgl_sampling
