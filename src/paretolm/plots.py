"""Figures of a search: the frontier against everything the search evaluated.

Drawn with matplotlib's Agg backend (no display needed) and written atomically as PNG.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from .artifacts import atomic_path

_LABELS = {"latency_ms": "latency (ms)", "peak_memory_mb": "peak memory (MB)",
           "decoder_params": "decoder parameters"}


def frontier_figure(archive: pd.DataFrame, front: pd.DataFrame, objectives: Mapping[str, str],
                    path: str | Path, title: str = "") -> Path:
    """One panel per pair of objectives (2-D projections) plus a 3-D view when there are three.
    Grey: every candidate; red: the frontier (sorted along the first axis of each panel)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    names = list(objectives)
    pairs = list(itertools.combinations(names, 2)) or [(names[0], names[0])]
    panels = len(pairs) + (1 if len(names) == 3 else 0)
    fig = plt.figure(figsize=(4.2 * panels, 4.0))
    for i, (x, y) in enumerate(pairs, start=1):
        ax = fig.add_subplot(1, panels, i)
        ax.scatter(archive[x], archive[y], s=10, c="0.7", label=f"evaluated ({len(archive)})")
        f = front.sort_values(x)
        ax.scatter(f[x], f[y], s=18, c="tab:red", label=f"frontier ({len(front)})", zorder=3)
        ax.set_xlabel(_label(x, objectives))
        ax.set_ylabel(_label(y, objectives))
        ax.grid(alpha=0.3)
        if i == 1:
            ax.legend(fontsize=8)
    if len(names) == 3:
        ax3 = fig.add_subplot(1, panels, panels, projection="3d")
        a, b, c = names
        ax3.scatter(archive[a], archive[b], archive[c], s=6, c="0.7")
        ax3.scatter(front[a], front[b], front[c], s=16, c="tab:red")
        ax3.set_xlabel(_label(a, objectives), fontsize=8)
        ax3.set_ylabel(_label(b, objectives), fontsize=8)
        ax3.set_zlabel(_label(c, objectives), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


def _label(name: str, objectives: Mapping[str, str]) -> str:
    arrow = "↑" if objectives.get(name) == "max" else "↓"
    return f"{_LABELS.get(name, name)} {arrow}"
