"""How well proxies rank trained models, and how close a proxy frontier is to the true one.

Sign convention. Proxies are oriented so that **higher predicts lower perplexity** (see
``paretolm.proxies``). The ``src`` and ``kendall`` columns written here are the plain rank
correlations of the proxy against the target *as measured*: against perplexity a good proxy has a
**negative** ``src`` (LTS's decoder-parameter count reaches -0.95 or below), against accuracy a
positive one. ``top_k_overlap`` is orientation-aware: the top-k by proxy (highest) against the
top-k by target (lowest perplexity / highest accuracy).

``d_avg`` is LTS's Eq. 2: for every point i of the proxy frontier, take the ground-truth Pareto
point closest to it in latency and average ``|p_i - p_gt,i| / p_gt,i`` over the proxy frontier,
where p is perplexity. Hypervolumes are computed in (latency, perplexity) space, both minimised,
against a reference point that defaults to the per-objective maximum over all the models compared
(so the ground-truth hypervolume of a set does not depend on the proxy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .pareto import hypervolume, non_dominated


def _check_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: column {missing[0]!r} missing (have {list(df.columns)})")


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """(Spearman, Kendall tau-b) of two equally long sequences, NaN pairs dropped."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan"), float("nan")
    return float(stats.spearmanr(a, b).statistic), float(stats.kendalltau(a, b).statistic)


def top_k_overlap(proxy: Sequence[float], target: Sequence[float], k: int,
                  lower_is_better: bool = True) -> float:
    """Fraction of the k best models by proxy (highest) that are among the k best by target."""
    p, t = np.asarray(proxy, dtype=float), np.asarray(target, dtype=float)
    if not 0 < k <= p.size:
        raise ValueError(f"top_k: k={k} must be in 1..{p.size}")
    best_p = set(np.argsort(-p, kind="stable")[:k])
    best_t = set(np.argsort(t if lower_is_better else -t, kind="stable")[:k])
    return len(best_p & best_t) / k


def correlation_table(
    df: pd.DataFrame,
    proxies: Sequence[str],
    targets: Mapping[str, bool],
    *,
    bin_column: str | None = "decoder_params",
    n_bins: int = 3,
    top_k: Sequence[float] = (0.1, 0.2, 0.5),
) -> pd.DataFrame:
    """One row per (target, proxy, bin): ``n``, ``src``, ``kendall`` and ``top{pct}`` overlaps.

    ``targets`` maps a target column to whether lower is better (perplexity: True, accuracy:
    False). ``bin = "all"`` is every model; with ``bin_column`` the models are also cut into
    ``n_bins`` equal-count bins of that column (LTS Fig. 12), labelled by their range.
    """
    _check_columns(df, list(proxies) + list(targets), "correlation")
    groups: list[tuple[str, pd.DataFrame]] = [("all", df)]
    if bin_column is not None and n_bins > 1 and len(df) >= 2 * n_bins:
        _check_columns(df, [bin_column], "correlation.bin_column")
        cut = pd.qcut(df[bin_column].rank(method="first"), n_bins, labels=False)
        for b in range(n_bins):
            part = df[cut == b]
            label = f"{bin_column}[{part[bin_column].min():.4g},{part[bin_column].max():.4g}]"
            groups.append((label, part))
    rows = []
    for target, lower in targets.items():
        for label, part in groups:
            for proxy in proxies:
                src, tau = rank_correlation(part[proxy], part[target])
                row: dict[str, Any] = {"target": target, "bin": label, "proxy": proxy, "n": len(part),
                                       "src": src, "kendall": tau}
                for frac in top_k:
                    k = max(1, int(round(frac * len(part))))
                    row[f"top{int(round(frac * 100))}"] = (
                        top_k_overlap(part[proxy], part[target], k, lower) if len(part) else float("nan")
                    )
                rows.append(row)
    return pd.DataFrame(rows)


# -- frontiers ------------------------------------------------------------------------------------
def d_avg(proxy_front: pd.DataFrame, gt_front: pd.DataFrame, latency: str = "latency_ms",
          ppl: str = "valid_ppl") -> float:
    """LTS Eq. 2: mean relative perplexity gap of each proxy-frontier model to the ground-truth
    Pareto point closest to it in latency (ties go to the first such point)."""
    _check_columns(proxy_front, [latency, ppl], "d_avg.proxy_front")
    _check_columns(gt_front, [latency, ppl], "d_avg.gt_front")
    if proxy_front.empty or gt_front.empty:
        raise ValueError("d_avg: both frontiers need at least one point")
    gl, gp = gt_front[latency].to_numpy(float), gt_front[ppl].to_numpy(float)
    gaps = []
    for lat, p in zip(proxy_front[latency].to_numpy(float), proxy_front[ppl].to_numpy(float), strict=True):
        j = int(np.argmin(np.abs(gl - lat)))
        gaps.append(abs(p - gp[j]) / gp[j])
    return float(np.mean(gaps))


def frontier_comparison(
    df: pd.DataFrame,
    proxy: str = "decoder_params",
    latency: str = "latency_ms",
    ppl: str = "valid_ppl",
    proxy_front: pd.Series | None = None,
    reference: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Proxy frontier vs ground-truth frontier over the trained models in ``df``.

    The ground-truth frontier is the non-dominated set of (latency, measured perplexity). The
    proxy frontier is ``proxy_front`` (a boolean mask, e.g. the search's frontier) or, by default,
    the non-dominated set of (latency, -proxy): what a training-free search would pick from ``df``.
    Returns ``d_avg``, both hypervolumes (reference: per-objective maximum over ``df`` unless
    given) and the two masks.
    """
    _check_columns(df, [proxy, latency, ppl], "frontier")
    gt = non_dominated(df[[latency, ppl]].to_numpy(float))
    if proxy_front is None:
        pf = non_dominated(np.column_stack([df[latency].to_numpy(float), -df[proxy].to_numpy(float)]))
    else:
        pf = np.asarray(proxy_front, dtype=bool)
    pts = df[[latency, ppl]].to_numpy(float)
    if reference is None:
        reference = pts.max(axis=0)
    return {
        "d_avg": d_avg(df[pf], df[gt], latency, ppl),
        "hypervolume_gt": hypervolume(pts[gt], reference),
        "hypervolume_proxy": hypervolume(pts[pf], reference),
        "reference": [float(r) for r in reference],
        "n_gt_front": int(gt.sum()),
        "n_proxy_front": int(pf.sum()),
        "gt_mask": gt,
        "proxy_mask": pf,
    }


# -- workflow stage -------------------------------------------------------------------------------
def frontier_table(df: pd.DataFrame, proxies: Sequence[str], ppl: str = "valid_ppl") -> pd.DataFrame:
    """``frontier_comparison`` per proxy and cost (latency, memory), plus the search's own frontier
    (rows with ``source == "frontier"``) when the trained set also holds other models."""
    rows = []
    for cost in ("latency_ms", "peak_memory_mb"):
        if cost not in df.columns or df[cost].isna().all():
            continue
        sub = df[df[cost].notna() & df[ppl].notna()].reset_index(drop=True)
        cands: list[tuple[str, Any]] = [(p, None) for p in proxies]
        on_front = (sub["source"] == "frontier").to_numpy() if "source" in sub.columns else None
        if on_front is not None and on_front.any() and not on_front.all():
            cands.append(("search_frontier", on_front))
        for name, mask in cands:
            proxy = name if mask is None else proxies[0]
            out = frontier_comparison(sub, proxy=proxy, latency=cost, ppl=ppl, proxy_front=mask)
            rows.append({"proxy": name, "cost": cost, "n": len(sub),
                         **{k: out[k] for k in ("d_avg", "hypervolume_gt", "hypervolume_proxy",
                                                "n_gt_front", "n_proxy_front")}})
    return pd.DataFrame(rows, columns=["proxy", "cost", "n", "d_avg", "hypervolume_gt", "hypervolume_proxy",
                                       "n_gt_front", "n_proxy_front"])

