"""Speculative-decoding functions over the ``torch.ops.sgl_kernel`` ops.

``tree_speculative_sampling_target_only`` has upstream SGLang's signature (argument names,
including the ``retrive_*`` spelling, order and defaults) and output contract: ``predicts``,
``accept_index`` and ``accept_token_num`` are written in place and nothing is returned. Its
exact definition (the tree walk, the thresholds, the bonus token, the defined results for
bad trees) is in ``sgl_kernel.speculative_reference``; docs/sampling.md has the summary.
"""

from __future__ import annotations

import torch

# Reached through this name so that tests can observe the calls.
_ops = torch.ops.sgl_kernel


def tree_speculative_sampling_target_only(
    predicts: torch.Tensor,
    accept_index: torch.Tensor,
    accept_token_num: torch.Tensor,
    candidates: torch.Tensor,
    retrive_index: torch.Tensor,
    retrive_next_token: torch.Tensor,
    retrive_next_sibling: torch.Tensor,
    uniform_samples: torch.Tensor,
    uniform_samples_for_final_sampling: torch.Tensor,
    target_probs: torch.Tensor,
    draft_probs: torch.Tensor,
    threshold_single: float = 1.0,
    threshold_acc: float = 1.0,
    deterministic: bool = True,
) -> None:
    r"""Verify each row's draft tree against the target model's probabilities.

    Walks the tree from its root (node 0): at each node the children are visited in sibling
    order and the first one whose running sum of target probabilities exceeds the node's coin
    (``uniform_samples[b, node] * threshold_acc``), or whose own probability reaches
    ``threshold_single``, is accepted. When the walk stops, one more (bonus) token is drawn
    with ``uniform_samples_for_final_sampling[b]`` from the last node's target row without
    the rejected children (minus ``draft_probs`` there, which callers pass as zeros). With
    the default thresholds the accepted tokens plus the bonus token are an exact sample of
    the target model's distribution.

    Parameters
    ----------
    predicts : torch.Tensor
        int32 (n,), written: ``predicts[retrive_index of a node]`` = the token chosen after
        that node (the next accepted token, or the bonus token after the last one).
    accept_index : torch.Tensor
        int32 (batch, S), written: the accepted nodes' ``retrive_index`` values, root first;
        entries past ``accept_token_num[b] + 1`` are left as they were.
    accept_token_num : torch.Tensor
        int32 (batch,), written: accepted draft tokens per row (at most S - 1; the bonus
        token is not counted).
    candidates, retrive_index, retrive_next_token, retrive_next_sibling : torch.Tensor
        int64 (batch, N): each node's token, its slot in ``predicts``, its first child and
        its next sibling (node indices within the row; -1 for none).
    uniform_samples : torch.Tensor
        float32 (batch, N) coins in [0, 1), one per node (used to choose among its children).
    uniform_samples_for_final_sampling : torch.Tensor
        float32 (batch,) coins in [0, 1) for the bonus token.
    target_probs, draft_probs : torch.Tensor
        float32 (batch, N, vocab): the target model's distribution after each node; the draft
        row subtracted from the last node's before the bonus draw (zeros in SGLang). Only read.
    threshold_single, threshold_acc : float
        In [0, 1]; 1 and 1 give exact sampling, smaller values accept more (biased).
    deterministic : bool
        Accepted for compatibility; the kernel is deterministic.

    Example
    -------
    >>> # one row, root 0 with one child (node 1, token 2) whose target probability is 1
    >>> predicts = torch.full((2,), -1, dtype=torch.int32)
    >>> accept_index = torch.full((1, 2), -1, dtype=torch.int32)
    >>> num = torch.zeros(1, dtype=torch.int32)
    >>> cand = torch.tensor([[0, 2]]); idx = torch.tensor([[0, 1]])
    >>> nxt = torch.tensor([[1, -1]]); sib = torch.tensor([[-1, -1]])
    >>> q = torch.zeros(1, 2, 3); q[0, 0, 2] = 1; q[0, 1, 1] = 1
    >>> sgl_kernel.tree_speculative_sampling_target_only(predicts, accept_index, num,
    ...     cand, idx, nxt, sib, torch.rand(1, 2), torch.rand(1), q, torch.zeros_like(q))
    >>> predicts, accept_index, num
    (tensor([2, 1], dtype=torch.int32), tensor([[0, 1]], dtype=torch.int32), tensor([1], dtype=torch.int32))
    """
    _ops.tree_speculative_sampling_target_only.default(
        predicts,
        accept_index,
        accept_token_num,
        candidates,
        retrive_index,
        retrive_next_token,
        retrive_next_sibling,
        uniform_samples,
        uniform_samples_for_final_sampling,
        target_probs,
        draft_probs,
        float(threshold_single),
        float(threshold_acc),
        bool(deterministic),
    )
