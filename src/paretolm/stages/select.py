"""Stage ``select``: the architectures the validation half trains (a Snakemake checkpoint)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pandas as pd

from paretolm.core.artifacts import provenance, write_table
from paretolm.stages.train import data_part

NAME = "select"
WILDCARDS = ()


def config_part(config: Mapping[str, Any], **wildcards: str) -> dict[str, Any]:
    """Where the architectures come from (``validation.sources``), which of them are trained again
    with other seeds (``validation.repeats``), the spaces they may be drawn from, and the tokenizer
    that sets their vocabulary."""
    if not config["validation"]["sources"]:
        raise ValueError("validation.sources: empty; name what to train, e.g. [{kind: frontier, hardware: cpu}]")
    return {**data_part(config), "spaces_dir": config["spaces_dir"],
            "validation": {"sources": config["validation"]["sources"],
                           "repeats": config["validation"]["repeats"]}}


def frontier_inputs(config: Mapping[str, Any]) -> dict[str, str]:
    """The searched frontiers a ``{kind: frontier}`` source reads, by input name."""
    return {f"frontier_{s['hardware']}": f"results/pareto_{s['hardware']}.parquet"
            for s in config["validation"]["sources"] if s["kind"] == "frontier"}


def run(part: Mapping[str, Any], *, frontiers: Mapping[str, str], out: str | os.PathLike) -> pd.DataFrame:
    """Select the architectures -> ``out``; ``frontiers`` maps ``frontier_<hw>`` to its file."""
    from paretolm.training.trainer import select_archs

    df = select_archs(part, frontiers)
    write_table(df, out, provenance(NAME, part, list(frontiers.values())))
    return df
