"""Figures of a search: the frontier against everything the search evaluated, and the
hypervolume of the measured frontier against the measurements spent.

Drawn with matplotlib's Agg backend (no display needed) and written atomically as PNG.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from paretolm.core.artifacts import atomic_path

_LABELS = {"latency_ms": "latency (ms)", "peak_memory_mb": "peak memory (MB)", "decoder_params": "decoder parameters"}


def frontier_figure(
    archive: pd.DataFrame, front: pd.DataFrame, objectives: Mapping[str, str], path: str | Path, title: str = ""
) -> Path:
    """One panel per pair of objectives (2-D projections) plus a 3-D view when there are three.
    Grey: every measured candidate; hollow: candidates whose numbers were predicted (when the
    archive has a ``measured`` column); red: the frontier (sorted along the first axis of each
    panel)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    names = list(objectives)
    predicted = archive.iloc[0:0]
    if "measured" in archive.columns:
        predicted = archive[~archive["measured"].astype(bool)]
        archive = archive[archive["measured"].astype(bool)]
    pairs = list(itertools.combinations(names, 2)) or [(names[0], names[0])]
    panels = len(pairs) + (1 if len(names) == 3 else 0)
    fig = plt.figure(figsize=(4.2 * panels, 4.0))
    for i, (x, y) in enumerate(pairs, start=1):
        ax = fig.add_subplot(1, panels, i)
        if len(predicted):
            ax.scatter(
                predicted[x],
                predicted[y],
                s=10,
                facecolors="none",
                edgecolors="0.75",
                linewidths=0.5,
                label=f"predicted ({len(predicted)})",
            )
        ax.scatter(archive[x], archive[y], s=10, c="0.45", label=f"measured ({len(archive)})")
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


def hypervolume_figure(
    traces: Mapping[str, Sequence[Sequence[float]]], path: str | Path, title: str = "", reference_label: str = ""
) -> Path:
    """Hypervolume of the measured frontier against measurements spent, one line per run
    (``{label: [[measurements, hypervolume], ...]}``), each ending with a marker at its total."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for label, trace in traces.items():
        xs = [p[0] for p in trace]
        ys = [p[1] for p in trace]
        line = ax.step(xs, ys, where="post", label=f"{label}: {int(xs[-1])} measurements")[0]
        ax.plot(xs[-1:], ys[-1:], "o", color=line.get_color())
    ax.set_xlabel("measurements spent (profile stage included)")
    ax.set_ylabel("hypervolume of the measured frontier" + (f" ({reference_label})" if reference_label else ""))
    ax.set_xscale("symlog", linthresh=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


def _label(name: str, objectives: Mapping[str, str]) -> str:
    arrow = "↑" if objectives.get(name) == "max" else "↓"
    return f"{_LABELS.get(name, name)} {arrow}"
