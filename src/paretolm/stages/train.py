"""Stage ``train``: train one selected run (an architecture, and a seed for repeats) from scratch
(resumable), scoring the validation loss at each of ``train.budgets`` on the way."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pandas as pd

from paretolm.core import lazy
from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import provenance
from paretolm.data import train_data
from paretolm.training.recipe import TrainConfig

# the stage's heavy part, imported when it runs: building the job graph reads every stage module
trainer = lazy.module("paretolm.training.trainer")

NAME = "train"
WILDCARDS = ("run",)

# Keys of the train section that only route jobs (the job's memory and minutes).
ROUTING_KEYS = ("mem_mb", "runtime")


def section(config: Mapping[str, Any]) -> dict[str, Any]:
    """The train section without its routing keys."""
    return {k: v for k, v in config["train"].items() if k not in ROUTING_KEYS}


def data_part(config: Mapping[str, Any]) -> dict[str, Any]:
    """What every validation stage depends on: training and the datasets and tokenizers."""
    for key in ("dataset", "tokenizer"):
        if config["train"][key] is None:
            raise ValueError(
                f"train.{key}: not set; the validation stages train on a {key} named under "
                f"{key}s (see config/config.yaml)"
            )
    return {"train": section(config), "datasets": config["datasets"], "tokenizers": config["tokenizers"]}


def config_part(config: Mapping[str, Any], **wildcards: str) -> dict[str, Any]:
    """Training settings, datasets and tokenizers (the same for every run: a repeat's seed is in
    the selected table, an input)."""
    return data_part(config)


def run(
    part: Mapping[str, Any], *, run: str, archs: str | os.PathLike, out_dir: str | os.PathLike, progress: bool = True
) -> dict[str, Any]:
    """Train run ``run`` (a row of ``archs``) -> ``out_dir``: ``model/``, ``train_log.parquet``,
    ``budgets.parquet`` and ``train_summary.json`` (``out_dir/checkpoint`` while it runs, so a
    killed job resumes)."""
    row = selected_row(archs, run)
    spec = ArchSpec.from_json(row["spec"])
    cfg = TrainConfig.from_section(part["train"])
    if "train_seed" in row and not pd.isna(row["train_seed"]):
        cfg = replace(cfg, seed=int(row["train_seed"]))
    dc = train_data(part)
    ids = dc.split("train").ids
    eval_ids = dc.split("validation").ids if cfg.budgets else None
    prov = provenance(NAME, part, [archs], wildcards={"run": run}, spec=spec.to_json(), seed=cfg.seed)
    return trainer.train(spec, ids, cfg, out_dir, eval_ids=eval_ids, progress=progress, prov=prov)


def selected_row(archs: str | os.PathLike, run: str) -> pd.Series:
    """The row of training run ``run`` (an arch_id, or ``<arch_id>-seed<s>`` for a repeat) in the
    table the ``select_validation`` checkpoint wrote."""
    table = pd.read_parquet(archs)
    key = "run" if "run" in table.columns else "arch_id"
    rows = table[table[key] == run]
    if rows.empty:
        raise ValueError(f"run: {run} is not among the selected training runs in {archs}")
    return rows.iloc[0]
