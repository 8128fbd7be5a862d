"""tree_speculative_sampling_target_only: the speculative-sampling guarantee, the walk,
greedy equivalence, upstream's contract, bad input; on the CPU reference and the GPU.

Distributions are checked by Pearson's chi-square at a false-alarm rate of ALPHA per case
(sgl_kernel.testing), with fixed seeds: the outcome is one sequence per row (the accepted
tokens and the bonus token), compared with the exact sequence distribution enumerated
from the tree and its target rows.
"""

from __future__ import annotations

import inspect
import re

import pytest
import torch

import sgl_kernel
from sgl_kernel import speculative_reference as sref
from sgl_kernel.testing import assert_matches_distribution, is_gpu, synchronize

# ----------------------------------------------------------------------------- trees


def random_tree(num_nodes: int, vocab: int, gen: torch.Generator, max_children: int = 3):
    """(parent, token) lists of a random draft tree: node 0 is the root; a node's parent has
    a smaller index; siblings carry distinct tokens (as a top-k draft does)."""
    parent, token, children = [-1], [0], {0: []}
    for i in range(1, num_nodes):
        options = [n for n in range(i) if len(children[n]) < min(max_children, vocab)]
        p = options[int(torch.randint(len(options), (1,), generator=gen))]
        used = {token[c] for c in children[p]}
        free = [v for v in range(vocab) if v not in used]
        token.append(free[int(torch.randint(len(free), (1,), generator=gen))])
        parent.append(p)
        children[p].append(i)
        children[i] = []
    return parent, token


def tree_tensors(parent, token, batch: int):
    """candidates, retrive_index, retrive_next_token, retrive_next_sibling: int64 (batch, N)
    for `batch` copies of the tree, slots b * N + node (SGLang's layout)."""
    n = len(parent)
    nxt, sib = [-1] * n, [-1] * n
    for i in range(1, n):
        p = parent[i]
        if nxt[p] == -1:
            nxt[p] = i
        else:
            c = nxt[p]
            while sib[c] != -1:
                c = sib[c]
            sib[c] = i
    rows = lambda v: torch.tensor(v, dtype=torch.int64).repeat(batch, 1)  # noqa: E731
    index = torch.arange(batch * n, dtype=torch.int64).view(batch, n)
    return rows(token), index, rows(nxt), rows(sib)


def random_target(num_nodes, vocab, gen, parent, token, zeros=True):
    """One target row per node: random weights, some zeros, with extra mass on the node's
    children so that walks go deep."""
    w = torch.rand(num_nodes, vocab, generator=gen, dtype=torch.float64) ** 3
    if zeros:
        w[torch.rand(num_nodes, vocab, generator=gen) < 0.25] = 0
    for i in range(1, num_nodes):
        w[parent[i], token[i]] += float(torch.rand((), generator=gen, dtype=torch.float64)) * 2
    return (w / w.sum(-1, keepdim=True)).float()


class Call:
    """Arguments of one op call on `device`; outputs start at -1 / 0 as SGLang's do."""

    def __init__(self, parent, token, batch, spec, target, device, gen, draft=None):
        cand, index, nxt, sib = tree_tensors(parent, token, batch)
        n, vocab = target.shape
        self.n = n
        self.parent, self.token = parent, token
        self.target_rows = target
        self.args = dict(
            predicts=torch.full((batch * n,), -1, dtype=torch.int32),
            accept_index=torch.full((batch, spec), -1, dtype=torch.int32),
            accept_token_num=torch.zeros(batch, dtype=torch.int32),
            candidates=cand,
            retrive_index=index,
            retrive_next_token=nxt,
            retrive_next_sibling=sib,
            uniform_samples=torch.rand(batch, n, generator=gen),
            uniform_samples_for_final_sampling=torch.rand(batch, generator=gen),
            target_probs=target.unsqueeze(0).repeat(batch, 1, 1).contiguous(),
            draft_probs=torch.zeros(batch, n, vocab) if draft is None else draft,
        )
        self.args = {k: v.to(device) for k, v in self.args.items()}
        self.device = device

    def run(self, **kwargs):
        sgl_kernel.tree_speculative_sampling_target_only(**self.args, **kwargs)
        synchronize(self.device)
        return {k: self.args[k].cpu() for k in ("predicts", "accept_index", "accept_token_num")}


def sequences(out, n):
    """Per row: the accepted tokens then the bonus token, read through accept_index."""
    seqs = []
    for b in range(out["accept_token_num"].size(0)):
        m = int(out["accept_token_num"][b])
        slots = out["accept_index"][b, : m + 1].tolist()
        seqs.append(tuple(int(out["predicts"][s]) for s in slots))
    return seqs


def exact_sequence_distribution(parent, token, target, spec):
    """{sequence: probability} of sampling autoregressively from the target rows, following
    the tree while the sampled token is a child's, at most spec - 1 tree tokens deep."""
    kids = {i: {} for i in range(len(parent))}
    for i in range(1, len(parent)):
        kids[parent[i]][token[i]] = i
    out = {}

    def visit(node, depth, prob, path):
        for v, q in enumerate(target[node].double().tolist()):
            seq = path + (v,)
            if depth < spec - 1 and v in kids[node]:
                visit(kids[node][v], depth + 1, prob * q, seq)
            else:
                out[seq] = out.get(seq, 0.0) + prob * q

    visit(0, 0, 1.0, ())
    return out


# ----------------------------------------------------------------------------- exactness

CASES = [  # (tree seed, nodes, vocab, spec: accept_index width)
    (1, 8, 6, 4),
    (2, 10, 5, 6),
    (3, 6, 7, 2),  # the depth limit cuts the tree: the bonus comes from the full row
    (4, 12, 4, 3),
]


@pytest.mark.parametrize("seed,nodes,vocab,spec", CASES)
def test_accepted_and_bonus_tokens_follow_the_target_distribution(device, seed, nodes, vocab, spec):
    gen = torch.Generator().manual_seed(seed)
    parent, token = random_tree(nodes, vocab, gen)
    target = random_target(nodes, vocab, gen, parent, token)
    rows = 40000 if is_gpu(device) else 12000
    call = Call(parent, token, rows, spec, target, device, gen)
    out = call.run()
    exact = exact_sequence_distribution(parent, token, target, spec)
    outcomes = sorted(exact)
    position = {s: i for i, s in enumerate(outcomes)}
    seqs = sequences(out, nodes)
    unknown = [s for s in seqs if s not in position]
    assert not unknown, f"sequences outside the tree's outcomes: {unknown[:5]}"
    ids = torch.tensor([position[s] for s in seqs])
    expected = torch.tensor([exact[s] for s in outcomes], dtype=torch.float64)
    assert_matches_distribution(ids, expected, f"tree {seed} on {device}")
    assert int(out["accept_token_num"].max()) <= spec - 1


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_accept_index_walks_tree_paths(device, seed):
    gen = torch.Generator().manual_seed(seed)
    nodes, vocab, spec, batch = 9, 5, 5, 500
    parent, token = random_tree(nodes, vocab, gen)
    target = random_target(nodes, vocab, gen, parent, token)
    call = Call(parent, token, batch, spec, target, device, gen)
    out = call.run()
    for b in range(batch):
        m = int(out["accept_token_num"][b])
        slots = out["accept_index"][b].tolist()
        assert slots[0] == b * nodes, "the root's slot comes first"
        assert all(s == -1 for s in slots[m + 1 :]), "entries past the accepted ones untouched"
        for i in range(1, m + 1):
            node, prev = slots[i] - b * nodes, slots[i - 1] - b * nodes
            assert parent[node] == prev, f"row {b}: node {node} is not a child of {prev}"
            assert int(out["predicts"][slots[i - 1]]) == token[node]
        bonus = int(out["predicts"][slots[m]])
        assert 0 <= bonus < vocab and float(target[slots[m] - b * nodes, bonus]) > 0


# ----------------------------------------------------------------------------- greedy


def greedy_verify(parent, token, target, spec):
    """SGLang's greedy verify: follow the child whose token is the target argmax."""
    kids = {i: {} for i in range(len(parent))}
    for i in range(1, len(parent)):
        kids[parent[i]][token[i]] = i
    node, path = 0, [0]
    tokens = []
    while True:
        best = int(torch.argmax(target[node]))
        tokens.append(best)
        if len(path) < spec and best in kids[node]:
            node = kids[node][best]
            path.append(node)
        else:
            return path, tokens


@pytest.mark.parametrize("thresholds", [(1.0, 1.0), (0.0, 0.0), (0.5, 0.3)])
@pytest.mark.parametrize("seed", [8, 9])
def test_one_hot_targets_reproduce_greedy_verify(device, seed, thresholds):
    """Target rows that are one-hot (temperature -> 0): for any coins and thresholds the op
    makes greedy verification's choices."""
    gen = torch.Generator().manual_seed(seed)
    nodes, vocab, spec, batch = 10, 4, 5, 64
    parent, token = random_tree(nodes, vocab, gen)
    target = random_target(nodes, vocab, gen, parent, token, zeros=False)
    one_hot = torch.nn.functional.one_hot(target.argmax(-1), vocab).float()
    call = Call(parent, token, batch, spec, one_hot, device, gen)
    out = call.run(threshold_single=thresholds[0], threshold_acc=thresholds[1])
    path, tokens = greedy_verify(parent, token, one_hot, spec)
    for b in range(batch):
        m = int(out["accept_token_num"][b])
        assert m == len(path) - 1
        assert out["accept_index"][b, : m + 1].tolist() == [b * nodes + n for n in path]
        assert [int(out["predicts"][b * nodes + n]) for n in path] == tokens


def test_upstream_example_tree(device):
    """The two-row tree of upstream's own kernel test (facts: its inputs and expected
    outputs), near-one-hot targets from logits at temperature 0.01."""
    cand = torch.tensor([[0, 1, 2, 3, 4, 5], [7, 8, 9, 10, 11, 12]])
    index = torch.tensor([[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]])
    nxt = torch.tensor([[1, 2, -1, 4, 5, -1], [4, 2, 3, -1, 5, -1]])
    sib = torch.tensor([[-1, 3, -1, -1, -1, -1], [-1, -1, -1, -1, 1, -1]])
    logits = torch.full((2, 6, 20), 1.0)
    for b, n, v in [(0, 0, 3), (0, 3, 4), (0, 4, 5), (1, 0, 11), (1, 4, 12)]:
        logits[b, n, v] = 10
    peak = logits.amax(-1) < 10
    logits[..., 18] = torch.where(peak, 10.0, logits[..., 18])
    target = torch.softmax(logits / 0.01, -1)
    expected = (
        [3, -1, -1, 4, 5, 18, 11, -1, -1, -1, 12, 18],
        [[0, 3, 4, 5], [6, 10, 11, -1]],
        [3, 2],
    )
    # Thresholds 0 give the same: since sglang 0.5.23 a child needs target mass > 0 (its
    # older test expected thresholds 0 to take the massless first child).
    want = {(1.0, 1.0): expected, (0.0, 0.0): expected}  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    for (single, acc), (predicts, accept, num) in want.items():
        args = dict(
            predicts=torch.full((12,), -1, dtype=torch.int32),
            accept_index=torch.full((2, 4), -1, dtype=torch.int32),
            accept_token_num=torch.zeros(2, dtype=torch.int32),
            candidates=cand,
            retrive_index=index,
            retrive_next_token=nxt,
            retrive_next_sibling=sib,
            uniform_samples=torch.rand(2, 6, generator=gen),
            uniform_samples_for_final_sampling=torch.rand(2, generator=gen),
            target_probs=target,
            draft_probs=torch.zeros_like(target),
        )
        args = {k: v.to(device) for k, v in args.items()}
        sgl_kernel.tree_speculative_sampling_target_only(
            **args, threshold_single=single, threshold_acc=acc, deterministic=True
        )
        assert args["predicts"].tolist() == predicts
        assert args["accept_index"].tolist() == accept
        assert args["accept_token_num"].tolist() == num


# ----------------------------------------------------------------------------- GPU = CPU


@pytest.mark.parametrize("draft", ["zeros", "random"])
@pytest.mark.parametrize("thresholds", [(1.0, 1.0), (0.6, 0.4)])
def test_gpu_matches_cpu_for_fixed_uniforms(device, thresholds, draft):
    if not is_gpu(device):
        pytest.skip("compares the GPU kernel with the CPU reference")
    gen = torch.Generator().manual_seed(11)
    for nodes, vocab, spec, batch in [(8, 50, 4, 300), (16, 3000, 6, 64), (5, 129000, 3, 8)]:
        parent, token = random_tree(nodes, min(vocab, 40), gen)
        target = random_target(nodes, vocab, gen, parent, token)
        d = None
        if draft == "random":
            d = torch.rand(batch, nodes, vocab, generator=gen) / vocab
        cpu = Call(parent, token, batch, spec, target, "cpu", torch.Generator().manual_seed(3), d)
        gpu = Call(parent, token, batch, spec, target, device, torch.Generator().manual_seed(3), d)
        want = cpu.run(threshold_single=thresholds[0], threshold_acc=thresholds[1])
        got = gpu.run(threshold_single=thresholds[0], threshold_acc=thresholds[1])
        assert torch.equal(got["accept_index"], want["accept_index"])
        assert torch.equal(got["accept_token_num"], want["accept_token_num"])
        # Bonus tokens: float64 sums in another order may move a boundary by ~1e-16.
        differ = int((got["predicts"] != want["predicts"]).sum())
        assert differ <= max(1, batch // 1000), f"{differ} predicts differ ({nodes}x{vocab})"


# ----------------------------------------------------------------------------- bad input


def small_call(device):
    gen = torch.Generator().manual_seed(12)
    parent, token = random_tree(5, 6, gen)
    return Call(parent, token, 3, 4, random_target(5, 6, gen, parent, token), device, gen)


BAD = [
    ("target_probs", lambda a: a["target_probs"].double(), "target_probs must be float32"),
    ("target_probs", lambda a: a["target_probs"][0], "target_probs must be 3-D"),
    ("draft_probs", lambda a: a["draft_probs"][:, :2].contiguous(), "draft_probs must have shape [3, 5, 6]"),
    ("candidates", lambda a: a["candidates"].int(), "candidates must be int64, got int32"),
    ("retrive_next_sibling", lambda a: a["retrive_next_sibling"][:2], "retrive_next_sibling must have shape [3, 5]"),
    ("uniform_samples", lambda a: a["uniform_samples"].t(), "uniform_samples must have shape [3, 5]"),
    ("uniform_samples_for_final_sampling", lambda a: a["uniform_samples_for_final_sampling"][:1], "must have shape [3]"),
    ("accept_index", lambda a: a["accept_index"][:, :0], "accept_index must have shape [3, >=1]"),
    ("accept_token_num", lambda a: a["accept_token_num"].long(), "accept_token_num must be int32"),
    ("predicts", lambda a: a["predicts"].view(3, 5), "predicts must be 1-D"),
    ("predicts", lambda a: a["predicts"][::2], "predicts must be contiguous"),
]  # fmt: skip


@pytest.mark.parametrize(
    "name,make,message", BAD, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD)]
)
def test_bad_arguments_raise_naming_the_argument(device, name, make, message):
    call = small_call(device)
    call.args[name] = make(call.args)
    with pytest.raises(
        RuntimeError, match=message if message.startswith("^") else re.escape(message)
    ):
        call.run()


@pytest.mark.parametrize("kw", [dict(threshold_single=1.5), dict(threshold_acc=-0.1)])
def test_thresholds_out_of_range_raise(device, kw):
    with pytest.raises(RuntimeError, match=f"{next(iter(kw))} must be in \\[0, 1\\]"):
        small_call(device).run(**kw)


def test_bad_arguments_fail_alike_on_meta_tensors():
    call = small_call("cpu")
    args = {k: v.to("meta") for k, v in call.args.items()}
    args["candidates"] = args["candidates"].int()
    with pytest.raises(RuntimeError, match="candidates must be int64"):
        sgl_kernel.tree_speculative_sampling_target_only(**args)


def test_bad_trees_have_defined_results(device):
    """Cycles, links and tokens out of range, slots out of range: no fault, no hang, and
    the GPU gives what the reference defines."""
    gen = torch.Generator().manual_seed(13)
    nodes, vocab, batch = 6, 7, 6
    parent, token = random_tree(nodes, vocab, gen)
    target = random_target(nodes, vocab, gen, parent, token)
    call = Call(parent, token, batch, 5, target, device, gen)
    a = {k: v.cpu() for k, v in call.args.items()}
    a["retrive_next_sibling"][0] = torch.tensor([1, 1, 1, 1, 1, 1])  # a cycle
    a["retrive_next_token"][0, 0] = 1
    a["retrive_next_token"][1] = torch.tensor([99, -5, 2**40, 3, -1, 0])  # out of range links
    a["candidates"][2] = torch.tensor([0, -3, 7, 2**33, 1, 2])  # tokens outside the vocab
    a["retrive_index"][3] = torch.tensor([-1, 10**6, 2**35, -(2**40), 5, 6])  # bad slots
    a["uniform_samples_for_final_sampling"][4] = float("nan")
    a["target_probs"][5] = float("nan")
    want = dict(a)
    for k in ("predicts", "accept_index", "accept_token_num"):
        want[k] = a[k].clone()
    sref.tree_speculative_sampling_target_only(*want.values(), 1.0, 1.0, True)
    got = {k: v.to(device) for k, v in a.items()}
    sgl_kernel.tree_speculative_sampling_target_only(**got)
    synchronize(device)
    for k in ("predicts", "accept_index", "accept_token_num"):
        assert torch.equal(got[k].cpu(), want[k]), k
    assert int(want["predicts"][5 * nodes]) == 0  # an all-NaN row: token 0


# ----------------------------------------------------------------------------- contract


def test_wrapper_has_upstreams_signature():
    params = inspect.signature(sgl_kernel.tree_speculative_sampling_target_only).parameters
    assert list(params) == [
        "predicts", "accept_index", "accept_token_num", "candidates", "retrive_index",
        "retrive_next_token", "retrive_next_sibling", "uniform_samples",
        "uniform_samples_for_final_sampling", "target_probs", "draft_probs",
        "threshold_single", "threshold_acc", "deterministic",
    ]  # fmt: skip
    defaults = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    assert defaults == {"threshold_single": 1.0, "threshold_acc": 1.0, "deterministic": True}


def test_schema_marks_the_outputs_written_and_draft_probs_read():
    schema = str(torch.ops.sgl_kernel.tree_speculative_sampling_target_only.default._schema)
    for name in ("predicts", "accept_index", "accept_token_num"):
        assert f"!) {name}" in schema
    assert "Tensor draft_probs" in schema


def test_opcheck(device):
    call = small_call(device)
    args = list(call.args.values()) + [1.0, 1.0, True]
    torch.library.opcheck(
        torch.ops.sgl_kernel.tree_speculative_sampling_target_only.default,
        args,
        test_utils=("test_schema", "test_faketensor"),
    )


def test_draft_probs_is_not_written(device):
    call = small_call(device)
    call.args["draft_probs"] = torch.rand_like(call.args["draft_probs"]) * 0.1
    before = call.args["draft_probs"].clone()
    call.run()
    assert torch.equal(call.args["draft_probs"], before)
