"""Stage ``correlate``: the proxies scored on the trained specs against measured perplexity and
zero-shot accuracy (SRC, Kendall, top-k, bootstrap intervals), at every training budget, beside the
seed-to-seed spread of the ground truth; frontiers (``d_avg``, hypervolumes) and figures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from paretolm.core import lazy
from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import provenance, write_table
from paretolm.data import load_batch, train_data_block
from paretolm.proxies import Scorer, get
from paretolm.stages.train import data_part
from paretolm.training.recipe import TrainConfig
from paretolm.validation.correlation import correlation_table, frontier_table, seed_noise

# the stage's heavy part, imported when it runs: building the job graph reads every stage module
figures_module = lazy.module("paretolm.validation.figures")

NAME = "correlate"
WILDCARDS = ()


def config_part(config: Mapping[str, Any], **wildcards: str) -> dict[str, Any]:
    """Training data, the validation section (its sources excluded) and the proxies section."""
    val = {k: v for k, v in config["validation"].items() if k != "sources"}
    return {**data_part(config), "validation": val, "proxies": config["proxies"]}


def run(
    part: Mapping[str, Any], *, eval_table: str, out: str, frontiers: str, figures: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Correlate -> ``out`` (the correlation table) and ``frontiers``; ``figures`` maps a figure
    name (``scatter``, ``src``, ``src_cost``, ``src_budget``) to its PNG path.

    Models trained again with other seeds (``validation.repeats``) are left out of the
    correlations and give the seed-to-seed spread instead, reported beside the SRC of every loss
    target; the validation loss each run scored at each of ``train.budgets`` gives the rows of
    target ``budget_valid_loss``, one per budget (``fraction``, ``train_tokens``)."""
    val = part["validation"]
    prox = part["proxies"]
    names = list(val["proxies"] or prox["names"])
    runs = pd.read_parquet(eval_table)
    repeat = runs["train_seed"].notna() if "train_seed" in runs.columns else pd.Series(False, index=runs.index)
    ev, repeats = runs[~repeat].reset_index(drop=True), runs[repeat].reset_index(drop=True)
    specs = [ArchSpec.from_json(s) for s in ev["spec"]]
    batch = None
    if any(get(n).needs_data for n in names):
        batch = load_batch(train_data_block(part), int(prox["batch_size"]), int(prox["seq_len"]), int(prox["seed"]))
    scorer = Scorer(names, seq_len=int(prox["seq_len"]), seed=int(prox["seed"]), batch=batch, settings=prox["settings"])
    scores = scorer.table(specs)
    df = ev.merge(scores, on="arch_id", how="left")
    targets = {c: True for c in ("valid_ppl", "test_ppl") if c in df.columns}
    targets.update({c: False for c in df.columns if c.endswith("shot_mean_acc")})
    options = {
        "bin_column": "decoder_params" if "decoder_params" in names else None,
        "n_bins": int(val["n_bins"]),
        "top_k": tuple(val["top_k"]),
        "bootstrap": val["bootstrap"],
    }
    cfg = TrainConfig.from_section(part["train"])
    table = correlation_table(df, names, targets, **options)
    table.insert(1, "fraction", 1.0)
    table.insert(2, "train_tokens", cfg.steps * cfg.batch_size * cfg.seq_len)
    if "valid_ppl" in df.columns:
        noise = _noise(
            np.log(df.set_index("arch_id")["valid_ppl"]), repeats, np.log(repeats.get("valid_ppl")), val["bootstrap"]
        )
        for key, value in noise.items():
            table[key] = np.where(table["target"] == "valid_ppl", value, np.nan)
    parts = [table]
    for j in range(_n_budgets(df)):
        loss = f"budget{j}_valid_loss"
        budget = correlation_table(
            df.rename(columns={loss: "budget_valid_loss"}), names, {"budget_valid_loss": True}, **options
        )
        budget.insert(1, "fraction", float(df[f"budget{j}_fraction"].iloc[0]))
        budget.insert(2, "train_tokens", int(df[f"budget{j}_tokens"].iloc[0]))
        for key, value in _noise(df.set_index("arch_id")[loss], repeats, repeats.get(loss), val["bootstrap"]).items():
            budget[key] = value
        parts.append(budget)
    table = pd.concat(parts, ignore_index=True)
    cost = {n: float(df[f"{n}_seconds"].median()) for n in names if f"{n}_seconds" in df.columns}
    setup = _setup_seconds(prox, names)
    # a one-off cost (a supernet's training) is spread over the candidates it scored here
    table["proxy_setup_seconds"] = table["proxy"].map(setup).fillna(0.0)
    table["proxy_seconds"] = table["proxy"].map(cost) + table["proxy_setup_seconds"] / max(1, len(df))
    prov = provenance(NAME, part, [eval_table])
    write_table(table, out, prov)
    write_table(frontier_table(df, names), frontiers, prov)
    if figures:
        figures_module.write_figures(df, table, names, figures)
    return table


def _setup_seconds(prox: Mapping[str, Any], names: list[str]) -> dict[str, float]:
    """Seconds a proxy spent once before scoring any candidate (a trained artifact's training)."""
    out = {}
    for name in names:
        p = get(name)
        if p.setup_seconds is not None:
            out[name] = float(p.setup_seconds(p.make_settings((prox["settings"] or {}).get(name))))
    return out


def _n_budgets(df: pd.DataFrame) -> int:
    """How many budgets every run of ``df`` scored (budget<j>_valid_loss columns present in all)."""
    j = 0
    while f"budget{j}_valid_loss" in df.columns and df[f"budget{j}_valid_loss"].notna().all():
        j += 1
    return j


def _noise(
    primary: pd.Series, repeats: pd.DataFrame, repeat_loss: pd.Series | None, bootstrap: Mapping[str, Any]
) -> dict[str, float]:
    """``correlation.seed_noise`` of one loss: ``primary`` per arch_id, ``repeat_loss`` the same
    loss of the repeated runs (rows of ``repeats``; None when they lack it)."""
    loss = repeat_loss if repeat_loss is not None else pd.Series(np.nan, index=repeats.index)
    rep = pd.DataFrame({"arch_id": repeats["arch_id"], "loss": loss.astype(float)})
    return seed_noise(primary.astype(float), rep, int(bootstrap["samples"]), int(bootstrap["seed"]))
