"""Per-request sampling parameters, validated with SGLang's rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

# A temperature below this samples greedily (it would overflow the logits otherwise).
_SAMPLING_EPS = 1e-6
# top_k = -1 ("all tokens") is carried as this k; any k >= vocab disables top-k.
TOP_K_ALL = 1 << 30


@dataclass
class SamplingParams:
    """What one request asks of the sampler.

    temperature >= 0 (below 1e-6 means greedy), 0 < top_p <= 1, top_k >= 1 or -1
    (all tokens), 0 <= min_p <= 1, and an optional integer sampling_seed that makes
    the request's tokens reproducible. Out-of-range values raise ValueError naming the
    field, its value and the allowed range. After validation, greedy requests carry
    temperature 1 and top_k 1, and top_k -1 is stored as TOP_K_ALL.
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

        if not isinstance(self.temperature, (int, float)) or not self.temperature >= 0:
            bad("temperature", self.temperature, "a number >= 0")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            bad("top_p", self.top_p, "in (0, 1]")
        if not isinstance(self.min_p, (int, float)) or not 0 <= self.min_p <= 1:
            bad("min_p", self.min_p, "in [0, 1]")
        if (
            isinstance(self.top_k, bool)
            or not isinstance(self.top_k, int)
            or not (self.top_k >= 1 or self.top_k == -1)
        ):
            bad("top_k", self.top_k, "an integer >= 1, or -1 for all tokens")
        if self.sampling_seed is not None and (
            isinstance(self.sampling_seed, bool) or not isinstance(self.sampling_seed, int)
        ):
            bad("sampling_seed", self.sampling_seed, "an integer or None")

    def normalize(self) -> None:
        if self.temperature < _SAMPLING_EPS:
            self.temperature = 1.0
            self.top_k = 1
        if self.top_k == -1:
            self.top_k = TOP_K_ALL

    @property
    def is_greedy(self) -> bool:
        return self.top_k == 1
