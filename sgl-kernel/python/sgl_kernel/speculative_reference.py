"""Torch-native reference of the speculative-decoding ops, and their validation.

Like ``sampling_reference``: each op function has its op's schema, validates like the GPU
binding (same messages), writes its outputs in place, and is registered as the op's CPU
kernel; ``VALIDATORS`` is what the fakes run. ``_registration.py`` iterates this module's
``OPS`` after sampling_reference's.

tree_speculative_sampling_target_only (upstream SGLang's contract, our definition of the
details). Per batch row b, with N draft nodes (node 0 is the root, the last verified token)
and S = accept_index.size(1):

* ``accept_index[b, 0] = retrive_index[b, 0]``. Walk from the root with ``coin =
  uniform_samples[b, node]``. For depth 1 .. S-1: visit the node's children (first child
  ``retrive_next_token``, then ``retrive_next_sibling``), adding each child's target
  probability ``q = target_probs[b, node, candidates[b, child]]`` (NaN, negatives: 0) to a
  float32 running sum; take the first child with ``q > 0`` and (``coin * threshold_acc <
  sum`` or ``q >= threshold_single``), threshold_acc raised to at least 1e-9 (float32 products
  and sums, as the kernel). Taking it writes its token into ``predicts[slot of the current
  node]``, its ``retrive_index`` into ``accept_index[b, accepted]``, and moves there. No child
  taken: the walk ends. ``accept_token_num[b]`` = the number of children taken.
* Bonus token, written into ``predicts[slot of the last node]``: drawn with
  ``uniform_samples_for_final_sampling[b]`` by inverse CDF (float64 running sums in token
  order; the first token whose sum exceeds coin * total, or the last positive one) from the
  residual ``max(q - draft, 0)`` over the last node's target row, where the draft row is
  subtracted and the rejected children's tokens are removed only when the walk ended before
  depth S-1. No positive finite residual mass: from the target row itself; none there either:
  token 0.
* With the default thresholds (1, 1) and siblings of distinct tokens, the accepted tokens
  plus the bonus token are an exact draw from the target model's distribution (a child is
  taken with probability q of its token; the bonus comes from q without the rejected ones).
* Defined results for bad trees: links outside [0, N) end a sibling list; at most N children
  are examined per row (cycles end); a token outside [0, vocab) is never taken; a slot outside
  [0, len(predicts)) is recorded in accept_index (as int32) but nothing is written to predicts.
  Entries of accept_index past the accepted count and unused predicts slots are not written.
  ``draft_probs`` is only read (upstream's kernel uses it as scratch). ``deterministic`` is
  accepted and ignored: the GPU kernel is deterministic.
"""

from __future__ import annotations

import torch

_FLOAT32_MAX = torch.finfo(torch.float64).max

# ----------------------------------------------------------------------------- checks

TREE_OP = "tree_speculative_sampling_target_only"
MAX_DRAFT_TOKENS = 1024  # the kernel keeps one node's rejected tokens in shared memory


def _fail(op: str, message: str):
    raise RuntimeError(f"{op}: {message}")


def _shape(sizes) -> str:
    return "[" + ", ".join(str(s) for s in sizes) + "]"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _check_tensor(name, t, dtype, ref, sizes) -> None:
    if t.device != ref.device:
        _fail(
            TREE_OP,
            f"{name} must be on the device of target_probs ({ref.device}), got {t.device}",
        )
    if t.dtype != dtype:
        _fail(TREE_OP, f"{name} must be {_dtype_name(dtype)}, got {_dtype_name(t.dtype)}")
    ok = t.dim() == len(sizes) and all(
        (t.size(d) >= 1 if s < 0 else t.size(d) == s) for d, s in enumerate(sizes)
    )
    if not ok:
        want = ", ".join(">=1" if s < 0 else str(s) for s in sizes)
        _fail(TREE_OP, f"{name} must have shape [{want}], got {_shape(t.shape)}")
    if not t.is_contiguous():
        _fail(TREE_OP, f"{name} must be contiguous")


def validate_tree(
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
    threshold_single,
    threshold_acc,
    deterministic,
    check_values=True,
) -> None:
    t = target_probs
    if t.dtype != torch.float32:
        _fail(TREE_OP, f"target_probs must be float32, got {_dtype_name(t.dtype)}")
    if t.dim() != 3 or t.size(1) < 1 or t.size(2) < 1:
        _fail(
            TREE_OP,
            "target_probs must be 3-D (batch, num_draft_tokens >= 1, vocab >= 1), "
            f"got shape {_shape(t.shape)}",
        )
    if not t.is_contiguous():
        _fail(TREE_OP, "target_probs must be contiguous")
    batch, num_draft, vocab = t.shape
    if num_draft > MAX_DRAFT_TOKENS:
        _fail(
            TREE_OP,
            f"target_probs must have at most {MAX_DRAFT_TOKENS} draft tokens, "
            f"got shape {_shape(t.shape)}",
        )
    if vocab >= 1 << 31:
        _fail(TREE_OP, f"target_probs must have a vocab below 2^31, got shape {_shape(t.shape)}")
    _check_tensor("draft_probs", draft_probs, torch.float32, t, (batch, num_draft, vocab))
    for name, tensor in (
        ("candidates", candidates),
        ("retrive_index", retrive_index),
        ("retrive_next_token", retrive_next_token),
        ("retrive_next_sibling", retrive_next_sibling),
    ):
        _check_tensor(name, tensor, torch.int64, t, (batch, num_draft))
    _check_tensor("uniform_samples", uniform_samples, torch.float32, t, (batch, num_draft))
    _check_tensor(
        "uniform_samples_for_final_sampling",
        uniform_samples_for_final_sampling,
        torch.float32,
        t,
        (batch,),
    )
    _check_tensor("accept_index", accept_index, torch.int32, t, (batch, -1))
    _check_tensor("accept_token_num", accept_token_num, torch.int32, t, (batch,))
    if predicts.device != t.device:
        _fail(
            TREE_OP,
            f"predicts must be on the device of target_probs ({t.device}), got {predicts.device}",
        )
    if predicts.dtype != torch.int32:
        _fail(TREE_OP, f"predicts must be int32, got {_dtype_name(predicts.dtype)}")
    if predicts.dim() != 1:
        _fail(TREE_OP, f"predicts must be 1-D, got shape {_shape(predicts.shape)}")
    if not predicts.is_contiguous():
        _fail(TREE_OP, "predicts must be contiguous")
    if not (0 <= threshold_single <= 1):
        _fail(TREE_OP, "threshold_single must be in [0, 1]")
    if not (0 <= threshold_acc <= 1):
        _fail(TREE_OP, "threshold_acc must be in [0, 1]")


# ----------------------------------------------------------------------------- the walk


def residual_draw(weights: torch.Tensor, coins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(token, usable) per row of float32 non-negative ``weights``: the first token whose
    float64 running sum exceeds coin * total (the last positive one if none does); usable is
    False where the total is not a positive finite number."""
    w = weights.double()
    total = w.sum(-1)
    usable = (total > 0) & (total <= _FLOAT32_MAX)
    target = coins.double() * total
    running = torch.cumsum(w, -1)
    crossed = (running > target.unsqueeze(-1)) & (w > 0)
    first = torch.argmax(crossed.int(), -1)
    vocab = w.size(-1)
    positions = torch.arange(vocab, device=w.device).expand_as(w)
    last_positive = torch.where(w > 0, positions, -1).amax(-1) if vocab else first
    token = torch.where(crossed.any(-1), first, last_positive)
    return token, usable


def tree_speculative_sampling_target_only(
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
    threshold_single,
    threshold_acc,
    deterministic,
) -> None:
    validate_tree(
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
        threshold_single,
        threshold_acc,
        deterministic,
    )
    batch, num_draft, vocab = target_probs.shape
    if batch == 0:
        return
    dev = target_probs.device
    spec = accept_index.size(1)
    rows = torch.arange(batch, device=dev)
    n_predicts = predicts.numel()
    th_single = torch.tensor(threshold_single, dtype=torch.float32, device=dev)
    th_acc = torch.tensor(threshold_acc, dtype=torch.float32, device=dev).clamp_min(1e-9)

    def in_nodes(x):
        return (x >= 0) & (x < num_draft)

    def write_predicts(mask, slots, values):
        ok = mask & (slots >= 0) & (slots < n_predicts)
        predicts[slots[ok]] = values[ok].to(torch.int32)

    node = torch.zeros(batch, dtype=torch.int64, device=dev)
    coin = uniform_samples[:, 0].clone()
    last_slot = retrive_index[:, 0].clone()
    accept_index[:, 0] = last_slot.to(torch.int32)
    accepted = torch.zeros(batch, dtype=torch.int64, device=dev)
    examined = torch.zeros(batch, dtype=torch.int64, device=dev)
    walking = torch.ones(batch, dtype=torch.bool, device=dev)
    rejected = torch.zeros(batch, vocab, dtype=torch.bool, device=dev)  # tokens, this level
    for _ in range(1, spec):
        if not bool(walking.any()):
            break
        rejected[walking] = False
        mass = torch.zeros(batch, dtype=torch.float32, device=dev)
        taken = torch.zeros(batch, dtype=torch.bool, device=dev)
        child = torch.where(walking, retrive_next_token[rows, node], -1)
        pending = walking & in_nodes(child)
        while True:
            pending &= examined < num_draft
            if not bool(pending.any()):
                break
            examined += pending.long()
            c = child.clamp(0, num_draft - 1)
            token = candidates[rows, c]
            token_ok = pending & (token >= 0) & (token < vocab)
            tok = token.clamp(0, vocab - 1)
            q = target_probs[rows, node, tok]
            q = torch.where(q > 0, q, torch.zeros_like(q))
            mass = torch.where(token_ok, mass + q, mass)
            take = token_ok & (q > 0) & ((coin * th_acc < mass) | (q >= th_single))
            write_predicts(take, last_slot, token)
            accepted += take.long()
            new_slot = retrive_index[rows, c]
            last_slot = torch.where(take, new_slot, last_slot)
            taken_rows = rows[take]
            accept_index[taken_rows, accepted[take]] = new_slot[take].to(torch.int32)
            node = torch.where(take, c, node)
            coin = torch.where(take, uniform_samples[rows, c], coin)
            reject = token_ok & ~take
            rejected[rows[reject], tok[reject]] = True
            taken |= take
            pending &= ~take
            child = torch.where(pending, retrive_next_sibling[rows, c], child)
            pending &= in_nodes(child)
        walking &= taken
    accept_token_num.copy_(accepted.to(torch.int32))

    stopped_early = accepted < spec - 1
    q = target_probs[rows, node]
    p = torch.where(stopped_early.view(-1, 1), draft_probs[rows, node], torch.zeros_like(q))
    residual = q - p
    residual = torch.where((residual > 0) & ~(rejected & stopped_early.view(-1, 1)), residual, 0.0)
    final_coin = uniform_samples_for_final_sampling
    token, usable = residual_draw(residual, final_coin)
    plain, plain_usable = residual_draw(torch.where(q > 0, q, 0.0), final_coin)
    token = torch.where(usable, token, torch.where(plain_usable, plain, 0))
    write_predicts(torch.ones_like(usable), last_slot, token)


# ----------------------------------------------------------------------------- chain

CHAIN_OP = "chain_speculative_sampling"


def validate_chain(
    draft_probs,
    draft_token_ids,
    target_probs,
    output_token_ids,
    output_accepted_token_num,
    output_emitted_draft_token_num,
    deterministic,
    gen,
    check_values=True,
) -> None:
    op = CHAIN_OP
    d = draft_probs
    if d.dtype != torch.float32:
        _fail(op, f"draft_probs must be float32, got {_dtype_name(d.dtype)}")
    if d.dim() != 3 or d.size(2) < 1:
        _fail(
            op,
            "draft_probs must be 3-D (batch, num_speculate_tokens, vocab >= 1), "
            f"got shape {_shape(d.shape)}",
        )
    if not d.is_contiguous():
        _fail(op, "draft_probs must be contiguous")
    batch, n, vocab = d.shape

    def same_device(name, t):
        if t.device != d.device:
            _fail(
                op,
                f"{name} must be on the same device as the probabilities ({d.device}), "
                f"got {t.device}",
            )

    same_device("target_probs", target_probs)
    if target_probs.dtype != torch.float32:
        _fail(op, f"target_probs must be float32, got {_dtype_name(target_probs.dtype)}")
    if tuple(target_probs.shape) != (batch, n + 1, vocab):
        _fail(
            op,
            f"target_probs must have shape {_shape((batch, n + 1, vocab))}, "
            f"got {_shape(target_probs.shape)}",
        )
    if not target_probs.is_contiguous():
        _fail(op, "target_probs must be contiguous")
    if target_probs.numel() > 2**32 - 1:
        _fail(
            op,
            "target_probs must have fewer than 2^32 elements, "
            f"got shape {_shape(target_probs.shape)}",
        )
    for name, t, shape in (
        ("draft_token_ids", draft_token_ids, (batch, n)),
        ("output_token_ids", output_token_ids, (batch, n + 1)),
    ):
        same_device(name, t)
        if t.dtype != torch.int32:
            _fail(op, f"{name} must be int32, got {_dtype_name(t.dtype)}")
        if tuple(t.shape) != shape:
            _fail(op, f"{name} must have shape {_shape(shape)}, got {_shape(t.shape)}")
        if not t.is_contiguous():
            _fail(op, f"{name} must be contiguous")
    for name, t in (
        ("output_accepted_token_num", output_accepted_token_num),
        ("output_emitted_draft_token_num", output_emitted_draft_token_num),
    ):
        same_device(name, t)
        if t.dtype != torch.int32:
            _fail(op, f"{name} must be int32, got {_dtype_name(t.dtype)}")
        if t.dim() != 1 or t.size(0) != batch:
            _fail(op, f"{name} must be 1-D of length {batch}, got shape {_shape(t.shape)}")
        if not t.is_contiguous():
            _fail(op, f"{name} must be contiguous")
    if check_values and draft_token_ids.numel() > 0:
        lo, hi = int(draft_token_ids.min()), int(draft_token_ids.max())
        if lo < 0 or hi >= vocab:
            _fail(op, f"draft_token_ids must lie in [0, {vocab}), got values in [{lo}, {hi}]")


def chain_speculative_sampling(
    draft_probs,
    draft_token_ids,
    target_probs,
    output_token_ids,
    output_accepted_token_num,
    output_emitted_draft_token_num,
    deterministic,
    gen,
) -> None:
    """Draft token i is accepted iff u_i * draft[i, t_i] < target[i, t_i] (float32), up to the
    first rejection at position pos (n if none); the token at pos is drawn from max(target -
    draft, 0) at pos (the bonus row target[n] when pos = n; no positive mass: token 0); -1
    after it. emitted += pos; accepted += pos plus the later positions that fresh uniforms
    would accept on their own (FlashInfer's alignment metric)."""
    validate_chain(
        draft_probs,
        draft_token_ids,
        target_probs,
        output_token_ids,
        output_accepted_token_num,
        output_emitted_draft_token_num,
        deterministic,
        gen,
    )
    batch, n, vocab = draft_probs.shape
    if batch == 0:
        return
    dev = draft_probs.device
    rows = torch.arange(batch, device=dev)
    ids = draft_token_ids.long()
    idx = torch.arange(n, device=dev)
    q = target_probs[:, :n].gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    p = draft_probs.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    u = torch.rand(batch, n, dtype=torch.float32, generator=gen, device=dev)
    accept = u * p < q
    rejected = ~accept
    pos = torch.where(rejected.any(-1), torch.argmax(rejected.int(), -1), n) if n else rows * 0
    u_later = torch.rand(batch, n, dtype=torch.float32, generator=gen, device=dev)
    later = ((u_later * p < q) & (idx.view(1, -1) >= pos.view(-1, 1))).sum(-1) if n else pos
    q_pos = target_probs[rows, pos]
    p_pos = torch.where(
        (pos < n).view(-1, 1), draft_probs[rows, pos.clamp(max=max(n - 1, 0))], 0.0
    ) if n else torch.zeros_like(q_pos)  # fmt: skip
    r = q_pos - p_pos
    r = torch.where(r > 0, r, 0.0).double()
    empty = r.sum(-1) <= 0
    r[empty, 0] = 1.0
    drawn = torch.multinomial(r, 1, generator=gen).view(-1)
    out = torch.full((batch, n + 1), -1, dtype=torch.int32, device=dev)
    keep = idx.view(1, -1) < pos.view(-1, 1)
    out[:, :n] = torch.where(keep, draft_token_ids, -1)
    out[rows, pos] = drawn.to(torch.int32)
    output_token_ids.copy_(out)
    output_accepted_token_num += (pos + later).to(torch.int32)
    output_emitted_draft_token_num += pos.to(torch.int32)


VALIDATORS = {
    TREE_OP: validate_tree,
    CHAIN_OP: validate_chain,
}

OPS = {
    TREE_OP: tree_speculative_sampling_target_only,
    CHAIN_OP: chain_speculative_sampling,
}
