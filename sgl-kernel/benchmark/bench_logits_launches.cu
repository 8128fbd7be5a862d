// Per-launch device times of the from-logits op's four kernels, without torch: a standalone
// program for comparing kernel variants (build it against another copy of csrc/sampling
// with an earlier -I; the copy needs absent filters, 89341d4 or later). Times are CUDA events
// around each launch after a 128 MiB memset (L2 flushed), median of 40 after 5 warm-up calls; the
// events add about 3 us per launch at batch 1, so compare variants with each other, not with
// bench_sampler_forward.py. A launch that is not made (launches 3 and 4 without top-k and
// top-p) reads about 1.3 us: the two events alone. The last column is a checksum of every row's
// token: variants that must agree print the same. Build and run (from the repository root, on a
// CUDA machine):
//   nvcc -I sgl-kernel/csrc -O3 --expt-relaxed-constexpr -std=c++20 \
//     -gencode=arch=compute_90,code=sm_90 sgl-kernel/benchmark/bench_logits_launches.cu \
//     -o /tmp/bench_logits_launches && /tmp/bench_logits_launches
#include <algorithm>
#include <cstdio>
#include <vector>

#include "sampling/logits_sampling.cuh"
using namespace sgl_sampling;
#define CK(x)                                                          \
  do {                                                                 \
    cudaError_t err_ = (x);                                            \
    if (err_ != cudaSuccess) {                                         \
      printf("CUDA %s line %d\n", cudaGetErrorString(err_), __LINE__); \
      exit(1);                                                         \
    }                                                                  \
  } while (0)

__device__ float hnormal(uint64_t i, uint32_t salt) {
  uint64_t x = i * 0x9E3779B97F4A7C15ull + salt * 0xD1B54A32D192ED03ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  float u1 = ((x >> 40) + 0.5f) / 16777216.f, u2 = (((x >> 16) & 0xFFFFFF) + 0.5f) / 16777216.f;
  return sqrtf(-2.f * logf(u1)) * cospif(2.f * u2);
}
// kind 0 peaked randn*3, 1 flat randn*0.5, 2 realistic 2*(-1.1 log(rank) + 0.5 z)
__global__ void fill(float* x, uint64_t n, uint32_t vocab, int kind) {
  for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < n;
       i += (uint64_t)gridDim.x * blockDim.x) {
    float z = hnormal(i, 1);
    if (kind == 0)
      x[i] = 3.f * z;
    else if (kind == 1)
      x[i] = 0.5f * z;
    else {
      uint64_t h = (i * 0x6A09E667F3BCC909ull) >> 20;
      float rank = 1.f + (float)(h % vocab);
      x[i] = 2.f * (-1.1f * logf(rank) + 0.5f * z);
    }
  }
}
struct Filter {
  const char* name;
  int kind;
  float t;
  int k;
  float p, minp;
};
int main() {
  const uint32_t vocab = 128256;
  int sms;
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const Filter filters[] = {
      {"keepall-flat", 1, 1.f, 1 << 30, 1.f, 0.f}, {"keepall-real", 2, 1.f, 1 << 30, 1.f, 0.f},
      {"minp-flat", 1, 1.f, 1 << 30, 1.f, 0.05f},  {"topk50-peak", 0, 1.f, 50, 1.f, 0.f},
      {"topp-peak", 0, 1.f, 1 << 30, 0.9f, 0.f},   {"topp-flat", 1, 1.f, 1 << 30, 0.9f, 0.f},
      {"k50p9-peak", 0, 1.f, 50, 0.9f, 0.f},       {"topp-real", 2, 0.7f, 1 << 30, 0.9f, 0.f},
      {"k50-real", 2, 1.f, 50, 1.f, 0.f}};
  const uint32_t batches[] = {1, 8, 64, 256};
  const uint32_t maxb = 256;
  float* logits;
  CK(cudaMalloc(&logits, (size_t)maxb * vocab * 4));
  float *t, *p, *mp;
  int32_t *k, *out;
  int64_t* seeds;
  CK(cudaMalloc(&t, maxb * 4));
  CK(cudaMalloc(&p, maxb * 4));
  CK(cudaMalloc(&mp, maxb * 4));
  CK(cudaMalloc(&k, maxb * 4));
  CK(cudaMalloc(&out, maxb * 4));
  CK(cudaMalloc(&seeds, maxb * 8));
  void* ws;
  CK(cudaMalloc(&ws, logits_workspace_bytes(maxb, 4096)));
  char* flush;
  const size_t flush_bytes = 128ull << 20;
  CK(cudaMalloc(&flush, flush_bytes));
  std::vector<int64_t> hs(maxb);
  for (uint32_t i = 0; i < maxb; ++i) hs[i] = 0x1234567 + 977 * i;
  CK(cudaMemcpy(seeds, hs.data(), maxb * 8, cudaMemcpyHostToDevice));
  cudaEvent_t ev[6];
  for (auto& e : ev) CK(cudaEventCreate(&e));
  printf("%-14s %5s %8s %8s %8s %8s %8s  %s\n", "filter", "B", "max", "hist", "select", "draw",
         "total", "tok0");
  for (const Filter& f : filters) {
    fill<<<1024, 256>>>(logits, (uint64_t)maxb * vocab, vocab, f.kind);
    std::vector<float> ht(maxb, f.t), hp(maxb, f.p), hm(maxb, f.minp);
    std::vector<int32_t> hk(maxb, f.k);
    CK(cudaMemcpy(t, ht.data(), maxb * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(p, hp.data(), maxb * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(mp, hm.data(), maxb * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(k, hk.data(), maxb * 4, cudaMemcpyHostToDevice));
    for (uint32_t rows : batches) {
      LogitsArgs<float> a{};
      a.logits = logits;
      a.row_stride = vocab;
      a.col_stride = 1;
      a.output = out;
      a.temperature = t;
      // A filter the case does not use is absent (nullptr), as the Sampler passes it.
      a.top_k = f.k < static_cast<int>(vocab) ? k : nullptr;
      a.top_p = f.p < 1.f ? p : nullptr;
      a.min_p = f.minp > 0.f ? mp : nullptr;
      a.seeds = seeds;
      a.positions = nullptr;
      a.vocab = vocab;
      a.chunks = logits_chunks(rows, vocab, sms);
      a.split_select = logits_split_select(rows, sms);
      plan_logits_launches(a, rows, ws);  // as TopKTopPMinPSamplingFromLogits does
      const int iters = 40;
      std::vector<float> times[5];
      for (int it = 0; it < iters + 5; ++it) {
        CK(cudaMemsetAsync(flush, it & 0xFF, flush_bytes));
        CK(cudaEventRecord(ev[0]));
        for (int step = 0; step < 4; ++step) {
          launch_logits_step(step, a, rows, nullptr);
          CK(cudaEventRecord(ev[step + 1]));
        }
        CK(cudaEventSynchronize(ev[4]));
        if (it < 5) continue;
        for (int j = 0; j < 4; ++j) {
          float ms;
          CK(cudaEventElapsedTime(&ms, ev[j], ev[j + 1]));
          times[j].push_back(ms * 1000);
        }
        float ms;
        CK(cudaEventElapsedTime(&ms, ev[0], ev[4]));
        times[4].push_back(ms * 1000);
      }
      CK(cudaGetLastError());
      std::vector<int32_t> tok(rows);
      CK(cudaMemcpy(tok.data(), out, 4 * rows, cudaMemcpyDeviceToHost));
      uint32_t sum = 0;
      for (uint32_t r = 0; r < rows; ++r) sum = sum * 1000003u + (uint32_t)tok[r];
      printf("%-14s %5u", f.name, rows);
      for (auto& v : times) {
        std::sort(v.begin(), v.end());
        printf(" %8.1f", v[v.size() / 2]);
      }
      printf("  %d %08x\n", tok[0], sum);
    }
  }
  return 0;
}
