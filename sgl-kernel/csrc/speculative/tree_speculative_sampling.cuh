// Tree verification of speculative decoding with the target model's probabilities only:
// the kernel behind sgl_kernel::tree_speculative_sampling_target_only. Our own source.
//
// One block per batch row. Thread 0 walks the draft tree from the root: at the current
// node it visits the children in sibling order, adding each child's target probability
// q[child token] to a running sum, and takes the first child whose running sum exceeds
// the node's coin times threshold_acc (or whose own probability reaches threshold_single).
// With the default thresholds (1, 1) this is an inverse-CDF draw from the node's target
// row restricted to its children: child c is taken with probability q[c]. When no child
// is taken, or the depth limit (accept_index's width - 1 accepted tokens) is reached, the
// whole block draws the bonus token from the residual: q - draft (negative parts as 0,
// draft read only when the walk stopped before the depth limit) with the rejected
// children's tokens removed. Together these give the target distribution exactly.
//
// The draw is an inverse CDF over the residual in token order, summed in double: the
// smallest token whose running sum exceeds coin * total. Deterministic (fixed-order cub
// reductions and scans over doubles, no atomics, no shuffles of our own), so portable to
// MUSA: no inline PTX, no warp-width assumption, no waits between blocks.
//
// Defined results for bad trees (checking them on the host would cost a device sync):
// child and sibling links outside [0, num_draft) end a sibling list; a walk examines at
// most num_draft children in all (a cycle cannot hang it); a candidate token outside
// [0, vocab) is never taken and removes nothing; a retrive_index value outside
// [0, num_predicts) is recorded in accept_index but never used to write predicts.
#pragma once

#include <cstdint>
#include <cub/cub.cuh>

namespace sgl_speculative {

constexpr uint32_t kTreeThreads = 512;
constexpr uint32_t kTreeItems = 4;  // consecutive tokens per thread in a scan tile
// The rejected children of one node live in shared memory: at most this many drafts.
constexpr uint32_t kMaxDraftTokens = 1024;

struct IndexMax {
  __device__ __forceinline__ int64_t operator()(int64_t a, int64_t b) const {
    return a > b ? a : b;
  }
};

template <uint32_t BLOCK>
struct TreeSharedState {
  union {
    typename cub::BlockReduce<double, BLOCK>::TempStorage sum;
    typename cub::BlockReduce<int64_t, BLOCK>::TempStorage index;
    typename cub::BlockScan<double, BLOCK>::TempStorage scan;
  } temp;
  int64_t node;       // the node whose target row the bonus token is drawn from
  int64_t last_slot;  // predicts slot of that node (retrive_index)
  uint32_t excluded;  // rejected children's tokens in `excluded_tokens`
  int use_draft;      // 1: subtract the draft row
  double total;       // residual mass
  int64_t last_positive;
  int64_t token;  // the drawn token, -1 while not found
};

// The residual weight of token i: max(q - p, 0) (NaN as 0), 0 for a rejected child.
__device__ __forceinline__ double residual_weight(const float* q, const float* p, uint32_t i,
                                                  const int32_t* excluded, uint32_t n_excluded) {
  float r = p != nullptr ? q[i] - p[i] : q[i];
  if (!(r > 0.f)) return 0.0;
  for (uint32_t e = 0; e < n_excluded; ++e) {
    if (excluded[e] == static_cast<int32_t>(i)) return 0.0;
  }
  return static_cast<double>(r);
}

// Inverse-CDF draw over the residual of (q, p, excluded). Every thread returns the same
// token, or -1 when the residual has no positive finite mass.
template <uint32_t BLOCK>
__device__ int64_t draw_from_residual(TreeSharedState<BLOCK>& s, const float* q, const float* p,
                                      const int32_t* excluded, uint32_t n_excluded, uint32_t vocab,
                                      float coin) {
  const uint32_t tx = threadIdx.x;
  double local_sum = 0.0;
  int64_t local_last = -1;
  for (uint32_t i = tx; i < vocab; i += BLOCK) {
    const double r = residual_weight(q, p, i, excluded, n_excluded);
    local_sum += r;
    if (r > 0.0) local_last = i;
  }
  const double total = cub::BlockReduce<double, BLOCK>(s.temp.sum).Sum(local_sum);
  __syncthreads();
  const int64_t last =
      cub::BlockReduce<int64_t, BLOCK>(s.temp.index).Reduce(local_last, IndexMax());
  if (tx == 0) {
    s.total = total;
    s.last_positive = last;
    s.token = -1;
  }
  __syncthreads();
  const double mass = s.total;
  if (!(mass > 0.0) || !(mass <= 1.7976931348623157e308)) return -1;  // none, NaN or inf
  const double target = static_cast<double>(coin) * mass;

  double running = 0.0;  // mass of the tiles before this one, the same in every thread
  for (uint32_t start = 0; start < vocab; start += BLOCK * kTreeItems) {
    const uint32_t first = start + tx * kTreeItems;
    double r[kTreeItems];
    double thread_sum = 0.0;
#pragma unroll
    for (uint32_t j = 0; j < kTreeItems; ++j) {
      r[j] = first + j < vocab ? residual_weight(q, p, first + j, excluded, n_excluded) : 0.0;
      thread_sum += r[j];
    }
    double before, tile_sum;
    cub::BlockScan<double, BLOCK>(s.temp.scan).ExclusiveSum(thread_sum, before, tile_sum);
    before += running;
    if (thread_sum > 0.0 && before <= target && target < before + thread_sum) {
      // This thread's tokens hold the crossing; the last positive one if rounding in
      // the sequential sum below puts it past them.
      double c = before;
      int64_t chosen = -1;
#pragma unroll
      for (uint32_t j = 0; j < kTreeItems; ++j) {
        if (r[j] > 0.0 && (chosen < 0 || c <= target)) {
          c += r[j];
          chosen = first + j;
        }
      }
      s.token = chosen;
    }
    running += tile_sum;
    __syncthreads();
    if (s.token >= 0) return s.token;
  }
  return s.last_positive;  // coin * total at or past the summed mass (rounding, coin >= 1)
}

template <uint32_t BLOCK>
__global__ void __launch_bounds__(BLOCK) TreeSpeculativeSamplingTargetOnlyKernel(
    int32_t* __restrict__ predicts, int32_t* __restrict__ accept_index,
    int32_t* __restrict__ accept_token_num, const int64_t* __restrict__ candidates,
    const int64_t* __restrict__ retrive_index, const int64_t* __restrict__ next_token,
    const int64_t* __restrict__ next_sibling, const float* __restrict__ coins,
    const float* __restrict__ final_coins, const float* __restrict__ target_probs,
    const float* __restrict__ draft_probs, uint32_t num_spec, uint32_t num_draft, uint32_t vocab,
    int64_t num_predicts, float threshold_single, float threshold_acc) {
  __shared__ TreeSharedState<BLOCK> s;
  extern __shared__ int32_t excluded_tokens[];  // num_draft entries
  const int64_t row = blockIdx.x;
  const int64_t base = row * num_draft;  // this row's first node

  if (threadIdx.x == 0) {
    int64_t node = 0;
    float coin = coins[base];
    int64_t last_slot = retrive_index[base];
    accept_index[row * num_spec] = static_cast<int32_t>(last_slot);
    uint32_t accepted = 0, excluded = 0, examined = 0;
    bool depth_reached = true;
    for (uint32_t depth = 1; depth < num_spec; ++depth) {
      const float* q = target_probs + (base + node) * static_cast<int64_t>(vocab);
      float mass = 0.f;
      bool taken = false;
      excluded = 0;
      int64_t child = next_token[base + node];
      while (child >= 0 && child < num_draft && examined < num_draft) {
        ++examined;
        const int64_t token = candidates[base + child];
        if (token >= 0 && token < vocab) {
          const float q_token = q[token] > 0.f ? q[token] : 0.f;  // NaN as 0
          mass += q_token;
          if (q_token > 0.f && (coin * threshold_acc < mass || q_token >= threshold_single)) {
            if (last_slot >= 0 && last_slot < num_predicts) {
              predicts[last_slot] = static_cast<int32_t>(token);
            }
            ++accepted;
            last_slot = retrive_index[base + child];
            accept_index[row * num_spec + accepted] = static_cast<int32_t>(last_slot);
            node = child;
            coin = coins[base + child];
            taken = true;
            break;
          }
          excluded_tokens[excluded++] = static_cast<int32_t>(token);
        }
        child = next_sibling[base + child];
      }
      if (!taken) {
        depth_reached = false;
        break;
      }
    }
    accept_token_num[row] = static_cast<int32_t>(accepted);
    s.node = node;
    s.last_slot = last_slot;
    s.excluded = depth_reached ? 0 : excluded;
    s.use_draft = depth_reached ? 0 : 1;
  }
  __syncthreads();

  const float* q = target_probs + (base + s.node) * static_cast<int64_t>(vocab);
  const float* p =
      s.use_draft ? draft_probs + (base + s.node) * static_cast<int64_t>(vocab) : nullptr;
  const float coin = final_coins[row];
  int64_t token = draw_from_residual<BLOCK>(s, q, p, excluded_tokens, s.excluded, vocab, coin);
  if (token < 0) {
    // No residual mass: draw from the target row itself; nothing there either: token 0.
    __syncthreads();
    token = draw_from_residual<BLOCK>(s, q, nullptr, excluded_tokens, 0, vocab, coin);
    if (token < 0) token = 0;
  }
  if (threadIdx.x == 0 && s.last_slot >= 0 && s.last_slot < num_predicts) {
    predicts[s.last_slot] = static_cast<int32_t>(token);
  }
}

// Launches one block per row; `excluded` shared memory of num_draft int32.
inline cudaError_t TreeSpeculativeSamplingTargetOnly(
    int32_t* predicts, int32_t* accept_index, int32_t* accept_token_num, const int64_t* candidates,
    const int64_t* retrive_index, const int64_t* next_token, const int64_t* next_sibling,
    const float* coins, const float* final_coins, const float* target_probs,
    const float* draft_probs, uint32_t batch, uint32_t num_spec, uint32_t num_draft, uint32_t vocab,
    int64_t num_predicts, float threshold_single, float threshold_acc, cudaStream_t stream) {
  const size_t smem = static_cast<size_t>(num_draft) * sizeof(int32_t);
  TreeSpeculativeSamplingTargetOnlyKernel<kTreeThreads><<<batch, kTreeThreads, smem, stream>>>(
      predicts, accept_index, accept_token_num, candidates, retrive_index, next_token, next_sibling,
      coins, final_coins, target_probs, draft_probs, num_spec, num_draft, vocab, num_predicts,
      threshold_single, threshold_acc);
  return cudaGetLastError();
}

}  // namespace sgl_speculative
