"""Quick probe of the from-logits op and Sampler.forward on the GPU (device time, launch hidden)."""
import sys, time, statistics, torch
sys.path.insert(0, "sgl-kernel/benchmark")
from bench_sampling import median_us
import sgl_kernel
from sglang.srt.layers.sampler import Sampler
from sglang.srt.layers.logits_processor import LogitsProcessorOutput
from sglang.srt.sampling.sampling_batch_info import SamplingBatchInfo
from sglang.srt.sampling.sampling_params import SamplingParams
from sglang.bench_sampler_synthetic import realistic_batch

dev = torch.device("cuda")
V = int(sys.argv[1]) if len(sys.argv) > 1 else 128256
RUNS = 100
types = {
    "greedy": (0.0, -1, 1.0, 0.0, 3.0),
    "keep-all": (1.0, V, 1.0, 0.0, 3.0),
    "top-p0.9 peaked": (1.0, V, 0.9, 0.0, 3.0),
    "top-p0.9 flat": (1.0, V, 0.9, 0.0, 0.5),
    "top-k50": (1.0, 50, 1.0, 0.0, 3.0),
    "min-p0.05 flat": (1.0, V, 1.0, 0.05, 0.5),
    "k50+p0.9": (1.0, 50, 0.9, 0.0, 3.0),
}
print(f"vocab {V}, {torch.cuda.get_device_name()}")
print(f"{'case':18s} {'B':>4s} {'logits op':>10s} {'probs op':>9s} {'softmax':>8s} {'amax':>7s}")
for B in (1, 8, 64, 256):
    g = torch.Generator(device=dev).manual_seed(0)
    for name, (t, k, p, m, scale) in types.items():
        x = torch.randn(B, V, device=dev, generator=g) * scale
        seeds = torch.arange(B, device=dev) * 7919 + 1
        kk = k if k != -1 else V
        f = lambda: sgl_kernel.top_k_top_p_min_p_sampling_from_logits(x, t, kk, p, m, seeds=seeds)
        us = median_us(f, dev, 10, RUNS)
        probs = torch.softmax(x, -1)
        fp = lambda: sgl_kernel.top_k_top_p_min_p_sampling_from_probs(probs, kk, p, m, seeds=seeds)
        usp = median_us(fp, dev, 10, RUNS)
        uss = median_us(lambda: torch.softmax(x, -1), dev, 10, RUNS)
        usa = median_us(lambda: x.amax(-1), dev, 10, RUNS)
        print(f"{name:18s} {B:4d} {us:10.1f} {usp:9.1f} {uss:8.1f} {usa:7.1f}", flush=True)

print("\nSampler.forward (kernel backend), no logprobs; extra MiB")
sampler = Sampler("flashinfer")
menu_types = {
    "temperature": SamplingParams(temperature=0.7),
    "top-p 0.9": SamplingParams(temperature=0.7, top_p=0.9),
    "top-k 50": SamplingParams(temperature=1.0, top_k=50),
    "min-p 0.05": SamplingParams(temperature=1.0, min_p=0.05),
    "greedy": SamplingParams(temperature=0.0),
}
for B in (1, 8, 64, 256):
    logits, menu = realistic_batch(B, V)
    logits = logits.to(dev)
    cases = {n: [p] * B for n, p in menu_types.items()}
    cases["menu"] = menu
    for name, params in cases.items():
        info = SamplingBatchInfo.from_sampling_params(params, dev)
        out = LogitsProcessorOutput(next_token_logits=logits)
        f = lambda: sampler(out, info, False, None, None)
        us = median_us(f, dev, 10, RUNS)
        torch.cuda.synchronize(); base = torch.cuda.memory_allocated(); torch.cuda.reset_peak_memory_stats()
        f(); torch.cuda.synchronize()
        extra = (torch.cuda.max_memory_allocated() - base) / 2**20
        print(f"{name:12s} B={B:4d} {us:8.1f} us  +{extra:.2f} MiB", flush=True)
