"""Per-request sampling parameters, validated with SGLang's rules.

A request is checked once, when its SamplingParams is built, against everything the
batch tensors of SamplingBatchInfo can carry (float32 temperature / top_p / min_p,
int32 top_k, int64 seed). A value that passes can therefore never make building a
batch fail, so one bad request cannot fail the requests batched with it; and the
dataclass is frozen, so a checked request cannot be changed afterwards
(dataclasses.replace() builds a new one and checks it again).
"""

from __future__ import annotations

import math
import numbers
import struct
from dataclasses import dataclass
from typing import Optional

# A temperature below this samples greedily (it would overflow the logits otherwise).
_SAMPLING_EPS = 1e-6
# top_k = -1 ("all tokens") is carried as this k; any k >= vocab disables top-k.
TOP_K_ALL = 1 << 30
# The batch tensors: top_k is int32, sampling_seed int64.
TOP_K_MAX = (1 << 31) - 1
SEED_MAX = (1 << 63) - 1


def as_float32(value: float) -> float:
    """value rounded to float32 as the batch tensors store it (inf when it overflows)."""
    try:
        return struct.unpack("f", struct.pack("f", float(value)))[0]
    except OverflowError:  # past the largest float32 (or even float64, for huge ints)
        return math.inf if value > 0 else -math.inf


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class SamplingParams:
    """What one request asks of the sampler.

    - temperature: a finite number >= 0 that is also finite as a float32 (at most about
      3.4e38); below 1e-6 means greedy.
    - top_p: in (0, 1], and still > 0 once rounded to float32 (below about 7e-46 it is 0).
    - top_k: an integer in [1, 2**31 - 1] (int32), or -1 for all tokens. Any k above
      TOP_K_ALL = 2**30 also means all tokens (no vocabulary is that large) and is stored
      as TOP_K_ALL.
    - min_p: in [0, 1].
    - sampling_seed: None, or an integer in [0, 2**63 - 1] (int64) that makes the
      request's tokens reproducible.

    Anything else raises ValueError naming the field, its value and the allowed range
    (NaN and infinities included). After validation, greedy requests carry temperature 1
    and top_k 1, top_k -1 is stored as TOP_K_ALL, and the fields are plain Python floats
    and ints.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    min_p: float = 0.0
    sampling_seed: Optional[int] = None

    def __post_init__(self) -> None:
        self.verify()
        self.normalize()

    def verify(self) -> None:
        def bad(field, value, allowed):
            raise ValueError(f"{field} must be {allowed}, got {value!r}")

        t = self.temperature
        if not _is_real(t) or not (0 <= t < math.inf) or math.isinf(as_float32(t)):
            bad("temperature", t, "a finite number >= 0 that float32 holds (up to about 3.4e38)")
        p = self.top_p
        if not _is_real(p) or not (0 < p <= 1) or not (0 < as_float32(p) <= 1):
            bad("top_p", p, "in (0, 1], and not so small that float32 rounds it to 0")
        m = self.min_p
        if not _is_real(m) or not (0 <= m <= 1) or not (0 <= as_float32(m) <= 1):
            bad("min_p", m, "in [0, 1]")
        k = self.top_k
        if not _is_integer(k) or not (1 <= k <= TOP_K_MAX or k == -1):
            bad("top_k", k, f"an integer in [1, {TOP_K_MAX}] (int32), or -1 for all tokens")
        s = self.sampling_seed
        if s is not None and (not _is_integer(s) or not 0 <= s <= SEED_MAX):
            bad("sampling_seed", s, f"None or an integer in [0, {SEED_MAX}] (int64)")

    def normalize(self) -> None:
        temperature, top_k = float(self.temperature), int(self.top_k)
        if temperature < _SAMPLING_EPS:
            temperature, top_k = 1.0, 1
        if top_k == -1 or top_k > TOP_K_ALL:
            top_k = TOP_K_ALL
        seed = None if self.sampling_seed is None else int(self.sampling_seed)
        # Frozen: the checked values are set once, here.
        for name, value in (
            ("temperature", temperature),
            ("top_p", float(self.top_p)),
            ("top_k", top_k),
            ("min_p", float(self.min_p)),
            ("sampling_seed", seed),
        ):
            object.__setattr__(self, name, value)

    @property
    def is_greedy(self) -> bool:
        return self.top_k == 1
