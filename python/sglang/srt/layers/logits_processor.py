"""The part of the logits processor's output that the sampler reads and fills in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch


@dataclass
class LogitsProcessorOutput:
    # [bs, vocab] logits of the next token (any float dtype); the sampler does not modify
    # them: it reads a scaled, sanitised float32 copy.
    next_token_logits: torch.Tensor
    # Filled in by the sampler when logprobs are requested:
    next_token_logprobs: Optional[torch.Tensor] = None  # [bs] logprob of the sampled token
    next_token_top_logprobs_val: Optional[List[List[float]]] = None
    next_token_top_logprobs_idx: Optional[List[List[int]]] = None
    next_token_token_ids_logprobs_val: Optional[List[Optional[List[float]]]] = None
    next_token_token_ids_logprobs_idx: Optional[List[Optional[List[int]]]] = None
