"""Stage ``correlate``: the proxies scored on the trained specs against measured perplexity and
zero-shot accuracy (SRC, Kendall, top-k), frontiers (``d_avg``, hypervolumes) and figures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..artifacts import provenance, write_table
from .train import data_part

NAME = "correlate"
WILDCARDS = ()


def config_part(config: Mapping[str, Any], **wildcards: str) -> dict[str, Any]:
    """Training data, the validation section (its sources excluded) and the proxies section."""
    val = {k: v for k, v in config["validation"].items() if k != "sources"}
    return {**data_part(config), "validation": val, "proxies": config["proxies"]}


def run(part: Mapping[str, Any], *, eval_table: str, out: str, frontiers: str,
        figures: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Correlate -> ``out`` (the correlation table) and ``frontiers``; ``figures`` maps a figure
    name (``scatter``, ``src``, ``src_cost``) to its PNG path."""
    from ..arch import ArchSpec
    from ..correlation import correlation_table, frontier_table
    from ..proxies import Scorer, get

    val = part["validation"]
    prox = part["proxies"]
    names = list(val["proxies"] or prox["names"])
    ev = pd.read_parquet(eval_table)
    specs = [ArchSpec.from_json(s) for s in ev["spec"]]
    batch = None
    if any(get(n).needs_data for n in names):
        from ..data import load_batch
        from ..training import data_block

        batch = load_batch(data_block(part), int(prox["batch_size"]), int(prox["seq_len"]), int(prox["seed"]))
    scorer = Scorer(names, seq_len=int(prox["seq_len"]), seed=int(prox["seed"]), batch=batch,
                    settings=prox["settings"])
    scores = scorer.table(specs)
    df = ev.merge(scores, on="arch_id", how="left")
    targets = {c: True for c in ("valid_ppl", "test_ppl") if c in df.columns}
    targets.update({c: False for c in df.columns if c.endswith("shot_mean_acc")})
    table = correlation_table(df, names, targets, bin_column="decoder_params" if "decoder_params" in names
                              else None, n_bins=int(val["n_bins"]), top_k=tuple(val["top_k"]))
    cost = {n: float(df[f"{n}_seconds"].median()) for n in names if f"{n}_seconds" in df.columns}
    table["proxy_seconds"] = table["proxy"].map(cost)
    prov = provenance(NAME, part, [eval_table])
    write_table(table, out, prov)
    write_table(frontier_table(df, names), frontiers, prov)
    if figures:
        from ..report import write_figures

        write_figures(df, table, names, figures)
    return table
