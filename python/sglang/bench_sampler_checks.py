"""The checks that make the model job a test: each returns a Check (passed + what it saw).

1. Greedy requests produce the same tokens on every backend.
2. Seeded requests produce the same tokens in every run of their batch (once per
   backend, which the Sampler promises; twice where only one backend runs).
3. A seeded request's token depends only on its logits row, seed and position: the
   recorded logits rows are sampled again alone and among other batch-mates, in other
   orders, and must give the recorded tokens. (The check uses recorded logits because
   the model's own numerics may change with the batch's shape; the sampler's must not.)
4. At a fixed prefix, many draws of the next token follow the exact filtered
   distribution of each sampling setting: Pearson's chi-square per (setting, backend)
   at a false-alarm rate of sgl_kernel.testing.ALPHA = 1e-4 each, tokens with small
   expected counts pooled, and no draw of a token the filters remove.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import torch

from sgl_kernel.testing import ALPHA, assert_matches_distribution
from sglang.bench_sampler_model import GREEDY, SETTINGS, Generation, Request, describe
from sglang.srt.layers.logits_processor import LogitsProcessorOutput
from sglang.srt.layers.sampler import Sampler
from sglang.srt.sampling.sampling_batch_info import SamplingBatchInfo
from sglang.srt.sampling.sampling_params import SamplingParams
from sglang.test.sampler_testing import exact_distribution

SEEDED_SETTING = SamplingParams(temperature=0.8, top_p=0.9)


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


def _sample(sampler, logits, params, positions, device) -> torch.Tensor:
    n = logits.size(0)
    info = SamplingBatchInfo.from_sampling_params(params, device)
    out = LogitsProcessorOutput(logits.to(device).contiguous())
    pos = torch.as_tensor(positions, dtype=torch.int64).to(device)
    return sampler(out, info, False, [0] * n, [None] * n, positions=pos).long().cpu()


def greedy_same_on_every_backend(requests: List[Request], gens: List[Generation]) -> Check:
    greedy = [i for i, r in enumerate(requests) if r.params.is_greedy]
    name = "greedy text identical on every backend"
    if len(gens) < 2:
        return Check(name, True, f"{len(greedy)} requests; one backend here, nothing to compare")
    ref = gens[0]
    differ = [
        f"request {i} on {g.backend}"
        for g in gens[1:]
        for i in greedy
        if not torch.equal(g.tokens[i], ref.tokens[i])
    ]
    backends = ", ".join(g.backend for g in gens)
    detail = f"{len(greedy)} requests x {len(gens)} backends ({backends})"
    return Check(name, not differ, detail + ("; differ: " + ", ".join(differ) if differ else ""))


def seeded_same_in_every_run(requests: List[Request], runs: List[Generation]) -> Check:
    seeded = [i for i, r in enumerate(requests) if r.params.sampling_seed is not None]
    ref = runs[0]
    differ = [
        f"request {i} in run {n} ({g.backend})"
        for n, g in enumerate(runs[1:], start=2)
        for i in seeded
        if not torch.equal(g.tokens[i], ref.tokens[i])
    ]
    detail = f"{len(seeded)} requests x {len(runs)} runs ({', '.join(g.backend for g in runs)})"
    return Check(
        "seeded text identical when run again",
        not differ,
        detail + ("; differ: " + ", ".join(differ) if differ else ""),
    )


def seeded_token_ignores_batchmates(
    requests: List[Request], gen: Generation, backends: Sequence[str], device: torch.device
) -> Check:
    """Sample the recorded logits rows of seeded requests again in other batches."""
    assert gen.logits is not None and gen.positions is not None, "generate(..., record=True)"
    steps = gen.tokens.size(1)
    seeded = [i for i, r in enumerate(requests) if r.params.sampling_seed is not None]
    others = [i for i in range(len(requests)) if i not in seeded]
    entries = [(s, i) for s in range(steps) for i in seeded]
    rng = random.Random(0)
    shuffled = entries[:]
    rng.shuffle(shuffled)
    mates = [(s, i) for s in range(steps) for i in others]
    mate_params = [GREEDY, *SETTINGS]
    layouts = {
        # a subset alone (one call per row is slow on a CPU)
        "alone": [[e] for e in entries[:: max(1, len(entries) // 16)]],
        "shuffled, unseeded mates": [shuffled + mates],
        "reversed, mates first": [mates[::-1] + entries[::-1]],
    }
    wrong, rows_checked = [], 0
    for backend in backends:
        sampler = Sampler(backend)
        for layout, batches in layouts.items():
            for batch in batches:
                logits = torch.stack([gen.logits[s, i] for s, i in batch])
                params = [
                    requests[i].params if i in seeded else mate_params[n % len(mate_params)]
                    for n, (s, i) in enumerate(batch)
                ]
                ids = _sample(
                    sampler, logits, params, [gen.positions[s, i] for s, i in batch], device
                )
                for n, (s, i) in enumerate(batch):
                    if i in seeded:
                        rows_checked += 1
                        if int(ids[n]) != int(gen.tokens[i, s]):
                            wrong.append(f"{backend} {layout}: request {i} step {s}")
    detail = (
        f"{len(entries)} recorded rows ({len(seeded)} requests x {steps} steps) in "
        f"{len(layouts)} layouts x {len(backends)} backends, {rows_checked} draws"
    )
    if wrong:
        detail += f"; {len(wrong)} differ, first: " + ", ".join(wrong[:3])
    return Check("seeded token unchanged when batch-mates change", not wrong, detail)


def pick_prefix(gen: Generation) -> int:
    """The request whose next token after the prompt is the most uncertain (highest
    entropy), among rows whose 200 largest logits are distinct (the exact distribution
    assumes no ties at a top-k or top-p cut)."""
    best, best_entropy = 0, -1.0
    for i, row in enumerate(gen.prompt_logits):
        top = row.topk(200).values
        if torch.unique(top).numel() < top.numel():
            continue
        p = torch.softmax(row.double(), dim=-1)
        entropy = float(-(p * torch.log(p.clamp_min(1e-300))).sum())
        if entropy > best_entropy:
            best, best_entropy = i, entropy
    return best


def next_token_distribution(
    logits_row: torch.Tensor,
    position: int,
    backends: Sequence[str],
    device: torch.device,
    draws: int,
    chunk: int,
    progress: Optional[Callable[[str], None]] = None,
) -> Check:
    """`draws` samples per (setting, backend) of one logits row against its exact distribution.

    Every setting of SETTINGS, plus SEEDED_SETTING with a different seed per draw (the
    seeded draws must be distributed like unseeded ones). Both backends sample every row,
    seeded or not, by one definition of the filters, so one expected distribution.
    """
    settings = [(s, False) for s in SETTINGS] + [(SEEDED_SETTING, True)]
    failures, cases = [], 0
    for backend in backends:
        sampler = Sampler(backend)
        for setting, seeded in settings:
            what = f"{backend} {describe(setting)}{' seeds' if seeded else ''}"
            if progress:
                progress(what)
            samples = []
            for start in range(0, draws, chunk):
                n = min(chunk, draws - start)
                if seeded:
                    params = [
                        dataclasses.replace(setting, sampling_seed=1000 + start + k)
                        for k in range(n)
                    ]
                else:
                    params = [setting] * n
                logits = logits_row.view(1, -1).expand(n, -1)
                samples.append(_sample(sampler, logits, params, [position] * n, device))
            expected = exact_distribution(logits_row, setting)
            cases += 1
            try:
                assert_matches_distribution(torch.cat(samples), expected, what)
            except AssertionError as err:
                failures.append(str(err))
    detail = (
        f"{len(settings)} settings x {len(backends)} backends, {draws} draws each, "
        f"chi-square at {ALPHA:g} per case ({cases} cases)"
    )
    if failures:
        detail += "; failed: " + "; ".join(failures)
    return Check(
        f"next-token frequencies match the exact distribution ({cases - len(failures)}/{cases})",
        not failures,
        detail,
    )
