"""Figures of the validation half (matplotlib, Agg backend): what the Snakemake report shows.

* ``scatter``: each proxy against measured validation perplexity, one panel per proxy, with the
  ground-truth Pareto frontier (latency vs perplexity) and the proxy's frontier (latency vs proxy)
  marked when latency was measured;
* ``src``: SRC of each proxy with validation perplexity (and mean zero-shot accuracy when present),
  over all models;
* ``src_cost``: SRC (sign flipped for perplexity, so higher is better) against the median seconds
  a proxy costs per architecture (LTS Fig. 13a);
* ``src_budget``: -SRC of each proxy with the validation loss against the training tokens the
  models had seen (``train.budgets``), with its bootstrap interval, and the seed-noise retest SRC
  of the ground truth itself where repeats were trained.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from paretolm.core.artifacts import atomic_path
from paretolm.core.pareto import non_dominated


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def scatter(df: pd.DataFrame, proxies: Sequence[str], path: str | os.PathLike, ppl: str = "valid_ppl") -> None:
    plt = _plt()
    n = len(proxies)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    has_lat = "latency_ms" in df.columns and df["latency_ms"].notna().all()
    gt = non_dominated(df[["latency_ms", ppl]].to_numpy(float)) if has_lat else np.zeros(len(df), bool)
    for ax, name in zip(axes.flat, proxies, strict=False):
        ax.scatter(df[name], df[ppl], s=18, c="0.55", label="trained models")
        if has_lat:
            pf = non_dominated(np.column_stack([df["latency_ms"], -df[name].to_numpy(float)]))
            ax.scatter(
                df[name][pf], df[ppl][pf], s=46, facecolors="none", edgecolors="tab:blue", label="proxy frontier"
            )
            ax.scatter(df[name][gt], df[ppl][gt], s=14, marker="x", c="tab:red", label="true frontier")
        ax.set_xlabel(name)
        ax.set_ylabel(ppl)
        ax.set_yscale("log")
        if df[name].min() > 0 and df[name].max() / max(df[name].min(), 1e-12) > 50:
            ax.set_xscale("log")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def src_bars(table: pd.DataFrame, path: str | os.PathLike) -> None:
    plt = _plt()
    # the final models only (the budget curve has a figure of its own)
    allrows = table[(table["bin"] == "all") & (table["target"] != "budget_valid_loss")]
    targets = list(dict.fromkeys(allrows["target"]))
    proxies = list(dict.fromkeys(allrows["proxy"]))
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(proxies) + 2), 3.6))
    width = 0.8 / max(1, len(targets))
    x = np.arange(len(proxies))
    for i, t in enumerate(targets):
        vals = allrows[allrows["target"] == t].set_index("proxy").reindex(proxies)["src"]
        ax.bar(x + i * width, vals, width, label=t)
    ax.axhline(0, c="k", lw=0.6)
    ax.set_xticks(x + width * (len(targets) - 1) / 2, proxies, rotation=30, ha="right")
    ax.set_ylabel("Spearman rank correlation")
    ax.set_ylim(-1, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def src_vs_cost(table: pd.DataFrame, path: str | os.PathLike, target: str = "valid_ppl") -> None:
    plt = _plt()
    rows = table[(table["bin"] == "all") & (table["target"] == target)].dropna(subset=["proxy_seconds"])
    fig, ax = plt.subplots(figsize=(5, 3.6))
    # Perplexity: a good proxy has a negative SRC, so plot -SRC; either way higher is better and a
    # proxy that ranks backwards stays visibly below zero instead of hiding behind |SRC|.
    sign = -1.0 if target.endswith("ppl") else 1.0
    quality = sign * rows["src"]
    ax.scatter(rows["proxy_seconds"].clip(lower=1e-7), quality)
    for r, q in zip(rows.itertuples(), quality, strict=True):
        ax.annotate(r.proxy, (max(r.proxy_seconds, 1e-7), q), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("median seconds per architecture")
    ax.set_ylabel(f"{'-' if sign < 0 else ''}SRC with {target}")
    ax.set_ylim(-1.05, 1.05)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def src_vs_budget(table: pd.DataFrame, path: str | os.PathLike, target: str = "budget_valid_loss") -> None:
    plt = _plt()
    rows = table[(table["bin"] == "all") & (table["target"] == target)].sort_values("train_tokens")
    fig, ax = plt.subplots(figsize=(7.2, 4))
    if rows.empty:
        ax.text(
            0.5, 0.5, "no training budgets scored (train.budgets)", ha="center", va="center", transform=ax.transAxes
        )
    groups = list(rows.groupby("proxy", sort=False))
    colours = plt.get_cmap("tab20").colors
    # intervals of many proxies hide each other: shaded only for a few, as error bars otherwise
    shade = len(groups) <= 4
    for i, (proxy, group) in enumerate(groups):
        colour = colours[i % len(colours)]
        x, y = group["train_tokens"].to_numpy(float), -group["src"].to_numpy(float)
        ax.plot(x, y, marker="o", ms=3, lw=1.2, color=colour, label=proxy)
        if not group["src_low"].notna().any():
            continue
        low, high = -group["src_high"].to_numpy(float), -group["src_low"].to_numpy(float)
        if shade:
            ax.fill_between(x, low, high, color=colour, alpha=0.12, lw=0)
        else:
            jitter = x * (1 + 0.012 * (i - len(groups) / 2))  # side by side on the log axis
            ax.errorbar(jitter, y, yerr=[y - low, high - y], fmt="none", ecolor=colour, alpha=0.35, lw=0.8)
    if "src_retest" in rows.columns and rows["src_retest"].notna().any():
        ceiling = rows.drop_duplicates("train_tokens")
        ax.plot(
            ceiling["train_tokens"],
            ceiling["src_retest"],
            color="k",
            ls="--",
            lw=1,
            label="ground truth vs. another seed",
        )
    ax.axhline(0.0, color="0.6", lw=0.8)
    if not rows.empty:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(plt.NullFormatter())  # the budgets' own ticks are enough
        ax.set_xticks(
            sorted(rows["train_tokens"].unique()), [f"{t / 1e6:.2g} M" for t in sorted(rows["train_tokens"].unique())]
        )
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xlabel("training tokens seen")
    ax.set_ylabel("-SRC with validation loss")
    ax.set_ylim(-1.05, 1.05)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def write_figures(
    df: pd.DataFrame, table: pd.DataFrame, proxies: Sequence[str], paths: Mapping[str, str | os.PathLike]
) -> None:
    """Write the figures named in ``paths`` (keys ``scatter``, ``src``, ``src_cost``, ``src_budget``)."""
    known = {"scatter", "src", "src_cost", "src_budget"}
    unknown = set(paths) - known
    if unknown:
        raise ValueError(f"figures: unknown figure {sorted(unknown)[0]!r} (known: {sorted(known)})")
    if "scatter" in paths:
        scatter(df, proxies, paths["scatter"])
    if "src" in paths:
        src_bars(table, paths["src"])
    if "src_cost" in paths:
        src_vs_cost(table, paths["src_cost"])
    if "src_budget" in paths:
        src_vs_budget(table, paths["src_budget"])
