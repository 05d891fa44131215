"""The proxy analysis on LTS's own trained architectures (``ground-truth/lts-archai``).

For every LTS set, paretolm recomputes each analytic proxy registered in ``paretolm.proxies``
from the architectures' configs (nothing is trained or run) and correlates it with the perplexity
LTS measured: ``valid_ppl`` for the random sets, the single ``ppl_summary`` number for the Pareto
sets. As a cross-check, LTS's own reported decoder-parameter count (``params_nonembedding``) is
analysed too, as the proxy ``lts_nonembedding``.

``src`` and ``kendall`` are the plain rank correlations of proxy vs perplexity, so a good proxy
(higher predicts lower perplexity) has a negative value; LTS reports their magnitude.

The Pareto sets carry the latency and peak memory LTS measured on each device; there the proxy
frontier (non-dominated in (latency, -proxy), or (memory, -proxy)) is compared with the
ground-truth frontier (non-dominated in (latency, perplexity)) among the same trained models:
``d_avg`` (LTS Eq. 2) and both hypervolumes, with the reference point at the per-objective maximum
over the set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from paretolm.analysis.lts_archai import load_lts_archs
from paretolm.core.arch import ArchSpec
from paretolm.proxies import Scorer, registry
from paretolm.validation import correlation

LTS_REFERENCE_PROXY = "lts_nonembedding"
COLUMNS = [
    "set",
    "proxy",
    "n",
    "src",
    "kendall",
    "target",
    "top10",
    "top20",
    "d_avg_latency",
    "hypervolume_gt_latency",
    "hypervolume_proxy_latency",
    "d_avg_memory",
    "hypervolume_gt_memory",
    "hypervolume_proxy_memory",
]


def analytic_proxies() -> list[str]:
    """Names of every registered proxy that needs no data (nor anything trained beforehand)."""
    return sorted(name for name, p in registry().items() if not p.needs_data and not p.trained)


def analyze_lts(
    root: str | os.PathLike | None = None,
    sets: Sequence[str] | None = None,
    proxies: Sequence[str] | None = None,
    seq_len: int = 192,
) -> pd.DataFrame:
    """One row per (set, proxy): ``n``, ``src``, ``kendall``, top-k overlaps and, for Pareto sets,
    ``d_avg`` and hypervolumes against latency and against memory."""
    archs = load_lts_archs(root, list(sets) if sets else None)
    if archs.empty:
        raise ValueError(f"lts-logs: no LTS architectures found under {root}")
    names = list(proxies) if proxies else analytic_proxies()
    scorer = Scorer(names, seq_len=seq_len)
    rows = []
    for set_name, part in archs.groupby("set", sort=True):
        part = part.reset_index(drop=True)
        specs = [ArchSpec.from_json(s) for s in part["spec"]]
        scores = scorer.table(specs)
        df = pd.concat([part, scores.drop(columns="arch_id")], axis=1)
        df[LTS_REFERENCE_PROXY] = df["params_nonembedding"]
        target = "valid_ppl" if df["valid_ppl"].notna().any() else "ppl"
        df = df[df[target].notna()]
        table = correlation.correlation_table(
            df, names + [LTS_REFERENCE_PROXY], {target: True}, bin_column=None, top_k=(0.1, 0.2)
        )
        for rec in table.to_dict("records"):
            row = {
                "set": set_name,
                "proxy": rec["proxy"],
                "n": rec["n"],
                "src": rec["src"],
                "kendall": rec["kendall"],
                "target": target,
                "top10": rec["top10"],
                "top20": rec["top20"],
            }
            for cost in ("latency", "memory"):
                col = f"{cost}_ms" if cost == "latency" else f"{cost}_mb"
                ok = df[col].notna() & df[rec["proxy"]].notna()
                if ok.sum() >= 2:
                    sub = df[ok]
                    cmp_ = correlation.frontier_comparison(sub, proxy=rec["proxy"], latency=col, ppl=target)
                    row[f"d_avg_{cost}"] = cmp_["d_avg"]
                    row[f"hypervolume_gt_{cost}"] = cmp_["hypervolume_gt"]
                    row[f"hypervolume_proxy_{cost}"] = cmp_["hypervolume_proxy"]
                else:
                    for k in ("d_avg", "hypervolume_gt", "hypervolume_proxy"):
                        row[f"{k}_{cost}"] = np.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)
