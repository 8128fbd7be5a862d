"""The sampling parameters of a batch, as tensors on the device the logits live on.

Built from validated SamplingParams, whose ranges are those of these tensors (float32,
int32, int64): building a batch cannot fail because of one request's values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch

from sglang.srt.sampling.sampling_params import TOP_K_ALL, SamplingParams


@dataclass
class SamplingBatchInfo:
    temperatures: torch.Tensor  # [bs, 1] float32
    top_ps: torch.Tensor  # [bs] float32
    top_ks: torch.Tensor  # [bs] int32
    min_ps: torch.Tensor  # [bs] float32
    is_all_greedy: bool
    has_greedy: bool  # some rows are greedy (top_k == 1): they take the argmax
    need_top_p_sampling: bool
    need_top_k_sampling: bool
    need_min_p_sampling: bool
    # [bs] int64, or None when no request set a seed. Rows of requests without a seed
    # get a seed drawn from torch's default generator, so they stay random.
    sampling_seed: Optional[torch.Tensor] = None
    # [n] int64: the rows whose request set a seed (None: every row of a seeded batch).
    # On the kernel backend only these rows keep their seed; the others get fresh seeds
    # drawn on the device at every step.
    seeded_rows: Optional[torch.Tensor] = None

    @classmethod
    def from_sampling_params(
        cls, params: List[SamplingParams], device: torch.device | str
    ) -> "SamplingBatchInfo":
        if not params:
            raise ValueError("a batch needs at least one request's SamplingParams")
        for i, p in enumerate(params):
            if not isinstance(p, SamplingParams):
                raise TypeError(f"params[{i}] must be a SamplingParams, got {type(p).__name__}")
        top_ks = [p.top_k for p in params]
        seeds = seeded_rows = None
        if any(p.sampling_seed is not None for p in params):
            seeded_rows = torch.tensor(
                [i for i, p in enumerate(params) if p.sampling_seed is not None],
                dtype=torch.int64,
                device=device,
            )
            drawn = torch.randint(0, 2**62, (len(params),)).tolist()
            seeds = torch.tensor(
                [
                    p.sampling_seed if p.sampling_seed is not None else d
                    for p, d in zip(params, drawn)
                ],
                dtype=torch.int64,
                device=device,
            )
        return cls(
            temperatures=torch.tensor(
                [[p.temperature] for p in params], dtype=torch.float32, device=device
            ),
            top_ps=torch.tensor([p.top_p for p in params], dtype=torch.float32, device=device),
            top_ks=torch.tensor(top_ks, dtype=torch.int32, device=device),
            min_ps=torch.tensor([p.min_p for p in params], dtype=torch.float32, device=device),
            is_all_greedy=all(k == 1 for k in top_ks),
            has_greedy=any(k == 1 for k in top_ks),
            need_top_p_sampling=any(p.top_p < 1.0 for p in params),
            need_top_k_sampling=any(k != TOP_K_ALL for k in top_ks),
            need_min_p_sampling=any(p.min_p > 0 for p in params),
            sampling_seed=seeds,
            seeded_rows=seeded_rows,
        )

    # (field, shape for a batch of bs rows) of every per-row tensor
    _ROW_FIELDS = (
        ("temperatures", lambda bs: (bs, 1)),
        ("top_ps", lambda bs: (bs,)),
        ("top_ks", lambda bs: (bs,)),
        ("min_ps", lambda bs: (bs,)),
        ("sampling_seed", lambda bs: (bs,)),
    )

    def check_batch(self, batch_size: int, device: torch.device) -> None:
        """ValueError unless every per-row tensor has one entry per logits row and lives
        on the logits' device: a mismatch would broadcast one row's parameters to the
        others, or truncate them, without an error. Shapes only: no host sync."""
        for name, shape in self._ROW_FIELDS:
            t = getattr(self, name)
            if t is None:
                continue
            want = shape(batch_size)
            if tuple(t.shape) != want:
                raise ValueError(
                    f"SamplingBatchInfo.{name} has shape {list(t.shape)}, expected "
                    f"{list(want)}: one entry per logits row ({batch_size} rows)"
                )
            if t.device != device:
                raise ValueError(
                    f"SamplingBatchInfo.{name} is on {t.device}, the logits on {device}"
                )
        rows = self.seeded_rows
        if rows is not None and (
            rows.dim() != 1
            or rows.dtype != torch.int64
            or rows.numel() > batch_size
            or rows.device != device
        ):
            raise ValueError(
                f"SamplingBatchInfo.seeded_rows must be an int64 vector of at most "
                f"{batch_size} row indices on {device}, got a {rows.dtype} tensor of shape "
                f"{list(rows.shape)} on {rows.device}"
            )
