"""Test helpers shared by the kernel tests (sgl-kernel/tests), the sampler tests
(test/srt) and the main job: the devices to run on, and a goodness-of-fit check for
sampled tokens. Importable as ``sgl_kernel.testing``; needs scipy.

Every test runs on the CPU and, when a GPU is visible, on the GPU build of the same ops.

Sampling tests compare token counts with the exact expected distribution by Pearson's
chi-square test at a false-alarm rate of ALPHA per case: with fixed seeds the suite
is deterministic, and a correct sampler fails a given case with probability ALPHA
over the choice of seed.
"""

import numpy as np
import torch
from scipy import stats

ALPHA = 1e-4


def _gpu_device():
    if torch.cuda.is_available():
        return "cuda"
    musa = getattr(torch, "musa", None)
    if musa is not None and musa.is_available():
        return "musa"
    return None


GPU = _gpu_device()
DEVICES = ["cpu"] + ([GPU] if GPU else [])


def is_gpu(device: str) -> bool:
    return device != "cpu"


def assert_matches_distribution(samples: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """samples: token ids; expected: probabilities over the vocab (zeros = forbidden)."""
    expected = expected.double().cpu().numpy()
    expected = expected / expected.sum()
    ids = samples.long().cpu().numpy()
    counts = np.bincount(ids, minlength=expected.size).astype(np.float64)
    forbidden = counts[expected == 0].sum()
    assert forbidden == 0, f"{what}: {int(forbidden)} samples of tokens with probability 0"
    n = counts.sum()
    support = np.flatnonzero(expected > 0)
    exp_counts = expected[support] * n
    obs = counts[support]
    # Pool tokens with small expected counts so the chi-square approximation holds.
    order = np.argsort(exp_counts)
    exp_sorted, obs_sorted = exp_counts[order], obs[order]
    bins_e, bins_o, acc_e, acc_o = [], [], 0.0, 0.0
    for e, o in zip(exp_sorted, obs_sorted):
        acc_e += e
        acc_o += o
        if acc_e >= 5:
            bins_e.append(acc_e)
            bins_o.append(acc_o)
            acc_e = acc_o = 0.0
    if acc_e > 0:
        if bins_e:
            bins_e[-1] += acc_e
            bins_o[-1] += acc_o
        else:
            bins_e, bins_o = [acc_e], [acc_o]
    if len(bins_e) < 2:
        return  # a single allowed bin: the forbidden-token check above is the whole test
    p_value = stats.chisquare(bins_o, bins_e).pvalue
    assert p_value > ALPHA, (
        f"{what}: chi-square p-value {p_value:.2e} <= {ALPHA} ({len(bins_e)} bins)"
    )
