"""How well proxies rank trained models, and how close a proxy frontier is to the true one.

Sign convention. Proxies are oriented so that **higher predicts lower perplexity** (see
``paretolm.proxies``). The ``src`` and ``kendall`` columns written here are the plain rank
correlations of the proxy against the target *as measured*: against perplexity a good proxy has a
**negative** ``src`` (LTS's decoder-parameter count reaches -0.95 or below), against accuracy a
positive one. ``top_k_overlap`` is orientation-aware: the top-k by proxy (highest) against the
top-k by target (lowest perplexity / highest accuracy).

Every SRC and Kendall tau comes with a percentile bootstrap confidence interval (``src_low``,
``src_high``, ``kendall_low``, ``kendall_high``: the models resampled with replacement). Beside
them, ``seed_noise`` says how much of a ranking the training seed alone decides, from
architectures trained again with other seeds (docs/validation.md).

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

from paretolm.core.pareto import hypervolume, non_dominated


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


def _rank_rows(a: np.ndarray) -> np.ndarray:
    return stats.rankdata(a, axis=1)


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=1) / np.where(den > 0, den, 1), np.nan)


def _kendall_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall tau-b of each row pair: sum of sign products over pairs, over the root of the
    products of the untied pair counts."""
    out = np.empty(a.shape[0])
    step = max(1, int(2e7 // max(1, a.shape[1] ** 2)))  # rows per chunk: bounded memory
    for i in range(0, a.shape[0], step):
        da = np.sign(a[i : i + step, :, None] - a[i : i + step, None, :])
        db = np.sign(b[i : i + step, :, None] - b[i : i + step, None, :])
        den = np.sqrt((da * da).sum(axis=(1, 2)) * (db * db).sum(axis=(1, 2)))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i : i + step] = np.where(den > 0, (da * db).sum(axis=(1, 2)) / np.where(den > 0, den, 1), np.nan)
    return out


def bootstrap_ci(
    x: Sequence[float], y: Sequence[float], samples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Percentile bootstrap interval of Spearman and Kendall tau-b (pairs resampled with
    replacement, NaN pairs dropped first): ``src_low``, ``src_high``, ``kendall_low``,
    ``kendall_high``; NaN when there are fewer than 3 pairs or no resamples."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    nan = {"src_low": np.nan, "src_high": np.nan, "kendall_low": np.nan, "kendall_high": np.nan}
    if a.size < 3 or samples <= 0:
        return nan
    idx = np.random.default_rng(seed).integers(0, a.size, size=(samples, a.size))
    ra, rb = a[idx], b[idx]
    src = _pearson_rows(_rank_rows(ra), _rank_rows(rb))
    tau = _kendall_rows(ra, rb)
    q = [50 * (1 - confidence), 50 * (1 + confidence)]
    out = dict(nan)
    if np.isfinite(src).any():
        out["src_low"], out["src_high"] = (float(v) for v in np.nanpercentile(src, q))
    if np.isfinite(tau).any():
        out["kendall_low"], out["kendall_high"] = (float(v) for v in np.nanpercentile(tau, q))
    return out


def seed_noise(primary: pd.Series, repeats: pd.DataFrame, samples: int = 1000, seed: int = 0) -> dict[str, float]:
    """How much the training seed alone moves a ground truth, against how much architectures differ.

    ``primary``: one loss (nats) per architecture (index ``arch_id``), as correlated;
    ``repeats``: ``arch_id`` and ``loss`` of the same architectures trained with other seeds.
    Returns ``seed_sd`` (the pooled within-architecture standard deviation, over each repeated
    architecture's runs including its primary one), ``arch_sd`` (the standard deviation of
    ``primary`` across architectures), their ratio ``noise_ratio``, ``n_repeated`` and
    ``src_retest``: the median Spearman correlation between ``primary`` and ``primary`` plus
    Gaussian noise of ``seed_sd`` per model, i.e. roughly how well the ground truth ranks itself
    when every model is trained again with another seed. A proxy's ``|src|`` near it is as good as
    this ground truth can tell.
    """
    primary = primary.dropna()
    out = {
        "seed_sd": np.nan,
        "arch_sd": float(primary.std(ddof=1)) if len(primary) > 1 else np.nan,
        "noise_ratio": np.nan,
        "n_repeated": 0,
        "src_retest": np.nan,
    }
    if repeats.empty:
        return out
    variances = []
    for arch, group in repeats.dropna(subset=["loss"]).groupby("arch_id"):
        values = list(group["loss"]) + ([primary[arch]] if arch in primary.index else [])
        if len(values) > 1:
            variances.append(np.var(values, ddof=1))
    if not variances:
        return out
    sd = float(np.sqrt(np.mean(variances)))
    out.update(seed_sd=sd, n_repeated=len(variances))
    if out["arch_sd"] and np.isfinite(out["arch_sd"]):
        out["noise_ratio"] = sd / out["arch_sd"]
    if len(primary) >= 3 and samples > 0:
        base = primary.to_numpy(float)
        noisy = base + np.random.default_rng(seed).normal(0.0, sd, size=(samples, base.size))
        src = _pearson_rows(_rank_rows(np.broadcast_to(base, noisy.shape)), _rank_rows(noisy))
        out["src_retest"] = float(np.nanmedian(src))
    return out


def top_k_overlap(proxy: Sequence[float], target: Sequence[float], k: int, lower_is_better: bool = True) -> float:
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
    bootstrap: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """One row per (target, proxy, bin): ``n``, ``src``, ``kendall``, their bootstrap intervals
    (``bootstrap``: ``samples``, ``confidence``, ``seed``; see ``bootstrap_ci``) and ``top{pct}``
    overlaps.

    ``targets`` maps a target column to whether lower is better (perplexity: True, accuracy:
    False). ``bin = "all"`` is every model; with ``bin_column`` the models are also cut into
    ``n_bins`` equal-count bins of that column (LTS Fig. 12), labelled by their range.
    """
    boot = {"samples": 1000, "confidence": 0.95, "seed": 0, **(bootstrap or {})}
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
                row: dict[str, Any] = {
                    "target": target,
                    "bin": label,
                    "proxy": proxy,
                    "n": len(part),
                    "src": src,
                    "kendall": tau,
                    **bootstrap_ci(
                        part[proxy], part[target], int(boot["samples"]), float(boot["confidence"]), int(boot["seed"])
                    ),
                }
                for frac in top_k:
                    k = max(1, int(round(frac * len(part))))
                    row[f"top{int(round(frac * 100))}"] = (
                        top_k_overlap(part[proxy], part[target], k, lower) if len(part) else float("nan")
                    )
                rows.append(row)
    return pd.DataFrame(rows)


# -- frontiers ------------------------------------------------------------------------------------
def d_avg(
    proxy_front: pd.DataFrame, gt_front: pd.DataFrame, latency: str = "latency_ms", ppl: str = "valid_ppl"
) -> float:
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
            rows.append(
                {
                    "proxy": name,
                    "cost": cost,
                    "n": len(sub),
                    **{
                        k: out[k]
                        for k in ("d_avg", "hypervolume_gt", "hypervolume_proxy", "n_gt_front", "n_proxy_front")
                    },
                }
            )
    return pd.DataFrame(
        rows,
        columns=["proxy", "cost", "n", "d_avg", "hypervolume_gt", "hypervolume_proxy", "n_gt_front", "n_proxy_front"],
    )
