"""What the model job prints and writes: texts, the timing table, the checks, CSV, plot."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import List

from sglang.bench_sampler_checks import Check
from sglang.bench_sampler_model import Generation, Request

TEXT_WIDTH = 110


def print_texts(title: str, requests: List[Request], gen: Generation) -> None:
    print(f"\n## {title} ({gen.backend}, {gen.device}, {gen.tokens.size(1)} tokens each)")
    for i, (r, text) in enumerate(zip(requests, gen.texts)):
        shown = text.replace("\n", " / ")
        if len(shown) > TEXT_WIDTH:
            shown = shown[: TEXT_WIDTH - 3] + "..."
        print(f"[{i:2d}] {r.label:28s} {r.prompt}\n     -> {shown}")


def _row(g: Generation) -> dict:
    """Medians over the timed steps; "other" is the median step minus the median model
    and Sampler times (host work between them)."""
    model = g.median_ms(g.model_steps)
    sampler = g.median_ms(g.sampler_steps)
    step = g.median_ms(g.whole_steps)
    return {
        "backend": g.backend,
        "device": g.device,
        "requests": g.tokens.size(0),
        "steps": g.timed_steps,
        "model_ms_per_step": model,
        "sampler_ms_per_step": sampler,
        "other_ms_per_step": max(step - model - sampler, 0.0),
        "sampler_share": sampler / step if step > 0 else 0.0,
        "tokens_per_s": g.tokens.size(0) / (step / 1000) if step > 0 else 0.0,
    }


def print_table(gens: List[Generation]) -> None:
    head = (
        f"{'backend':11s} {'device':7s} {'batch':>5s} {'timed':>5s} {'model ms':>9s} "
        f"{'sampler ms':>10s} {'sampler share':>13s} {'tokens/s':>9s}"
    )
    print("\n" + head)
    print("-" * len(head))
    for g in gens:
        r = _row(g)
        print(
            f"{r['backend']:11s} {r['device']:7s} {r['requests']:5d} {r['steps']:5d} "
            f"{r['model_ms_per_step']:9.2f} {r['sampler_ms_per_step']:10.2f} "
            f"{r['sampler_share']:12.1%} {r['tokens_per_s']:9.0f}"
        )
    print(
        "(median per decode step over the timed steps, all but the first two; the backends "
        "took turns step by step, so each saw the same machine)"
    )


def print_checks(checks: List[Check]) -> None:
    print()
    for c in checks:
        print(f"{'ok  ' if c.passed else 'FAIL'} {c.name}: {c.detail}")


def write_csv(gens: List[Generation], path: Path) -> None:
    rows = [_row(g) for g in gens]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in r.items()})


def plot(gens: List[Generation], path: Path, title: str) -> None:
    """Where a decode step's time goes: model forward, Sampler, the rest (host work)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [_row(g) for g in gens]
    labels = [f"{r['backend']}\n{r['device']}" for r in rows]
    parts = [
        ("model_ms_per_step", "model forward", "tab:blue"),
        ("sampler_ms_per_step", "Sampler", "tab:orange"),
        ("other_ms_per_step", "other (host)", "tab:gray"),
    ]
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.7 * len(rows)))
    left = [0.0] * len(rows)
    for key, name, color in parts:
        values = [r[key] for r in rows]
        ax.barh(range(len(rows)), values, left=left, color=color, label=name)
        left = [a + b for a, b in zip(left, values)]
    for y, r in enumerate(rows):
        ax.text(left[y], y, f"  sampler {r['sampler_share']:.0%}", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), labels)
    ax.set_xlabel("ms per decode step")
    ax.set_xlim(0, max(left) * 1.25)
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
