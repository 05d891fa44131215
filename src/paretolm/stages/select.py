"""Stage ``select``: the architectures the validation half trains (a Snakemake checkpoint)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import provenance, write_table
from paretolm.core.counting import count
from paretolm.core.spaces import SearchSpace
from paretolm.data import train_data
from paretolm.stages.train import data_part
from paretolm.training.recipe import TrainConfig

NAME = "select"
WILDCARDS = ()


def config_part(config: Mapping[str, Any], **wildcards: str) -> dict[str, Any]:
    """Where the architectures come from (``validation.sources``), which of them are trained again
    with other seeds (``validation.repeats``), the spaces they may be drawn from, and the tokenizer
    that sets their vocabulary."""
    if not config["validation"]["sources"]:
        raise ValueError("validation.sources: empty; name what to train, e.g. [{kind: frontier, hardware: cpu}]")
    return {
        **data_part(config),
        "spaces_dir": config["spaces_dir"],
        "validation": {"sources": config["validation"]["sources"], "repeats": config["validation"]["repeats"]},
    }


def frontier_inputs(config: Mapping[str, Any]) -> dict[str, str]:
    """The searched frontiers a ``{kind: frontier}`` source reads, by input name."""
    return {
        f"frontier_{s['hardware']}": f"results/pareto_{s['hardware']}.parquet"
        for s in config["validation"]["sources"]
        if s["kind"] == "frontier"
    }


def run(part: Mapping[str, Any], *, frontiers: Mapping[str, str], out: str | os.PathLike) -> pd.DataFrame:
    """Select the architectures -> ``out``; ``frontiers`` maps ``frontier_<hw>`` to its file."""
    df = select_archs(part, frontiers)
    write_table(df, out, provenance(NAME, part, list(frontiers.values())))
    return df


def select_archs(part: Mapping[str, Any], inputs: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The architectures to train: one row per distinct trained spec with its ``source``.

    Sources (``validation.sources``): ``{kind: sample, space, n, seed}`` (a random sample, the
    ground truth), ``{kind: frontier, hardware}`` (``results/pareto_{hardware}.parquet``) and
    ``{kind: baselines, base: <spec>, n_layer: [...]}`` (LTS's hand-scaled backbones). Every spec
    gets the tokenizer's vocabulary (``vocab_size``) and at least the training sequence length, so
    its ``arch_id`` is that of the model actually trained; ``source_arch_id`` keeps the original.
    """
    vocab = train_data(part).vocab_size()
    seq_len = TrainConfig.from_section(part["train"]).seq_len
    rows: list[dict[str, Any]] = []
    for i, src in enumerate(part["validation"]["sources"]):
        kind = src.get("kind")
        if kind == "sample":
            space = SearchSpace.from_yaml(Path(part["spaces_dir"]) / f"{src['space']}.yaml")
            specs = [(s, {}) for s in space.sample(int(src["n"]), int(src.get("seed", 0)))]
        elif kind == "frontier":
            hw = src["hardware"]
            path = (inputs or {}).get(f"frontier_{hw}") or f"results/pareto_{hw}.parquet"
            front = pd.read_parquet(path)
            specs = [
                (ArchSpec.from_json(r["spec"]), {k: r[k] for k in ("latency_ms", "peak_memory_mb") if k in r})
                for _, r in front.iterrows()
            ]
        elif kind == "baselines":
            base = dict(src["base"])
            specs = []
            for n in src["n_layer"]:
                d = dict(base, n_layer=int(n))
                specs.append((ArchSpec.from_dict(d), {}))
        else:
            raise ValueError(f"validation.sources[{i}].kind: expected sample, frontier or baselines, got {kind!r}")
        for spec, extra in specs:
            trained = spec.plugin.retarget(spec, vocab, max(spec.max_seq_len, seq_len))
            rows.append(
                {
                    "arch_id": trained.arch_id,
                    "spec": trained.to_json(),
                    "source": kind,
                    "source_arch_id": spec.arch_id,
                    **{f"search_{k}": float(v) for k, v in extra.items()},
                }
            )
    df = pd.DataFrame(rows)
    if df.empty:
        raise ValueError("validation.sources: no architectures selected")
    df = df.drop_duplicates("arch_id").reset_index(drop=True)
    df.insert(0, "run", df["arch_id"])
    df.insert(2, "train_seed", pd.array([None] * len(df), dtype="Int64"))
    return pd.concat([df, _repeats(df, part["validation"].get("repeats") or {})], ignore_index=True)


def _repeats(df: pd.DataFrame, repeats: Mapping[str, Any]) -> pd.DataFrame:
    """Runs of ``repeats.archs`` of the selected architectures with each seed of ``repeats.seeds``
    (run ``<arch_id>-seed<s>``): the seed-to-seed spread that correlate reports beside every SRC.
    The architectures are spread evenly over the selection ranked by total parameters, so the
    spread is measured on small and large models alike."""
    n = min(int(repeats.get("archs", 0)), len(df))
    if n == 0:
        return df.iloc[:0]
    size = [count(ArchSpec.from_json(s)).total_params for s in df["spec"]]
    order = np.argsort(size, kind="stable")
    picks = order[np.unique(np.round(np.linspace(0, len(df) - 1, n)).astype(int))]
    rows = []
    for seed in repeats.get("seeds", []):
        for i in picks:
            row = df.iloc[i].to_dict()
            rows.append({**row, "run": f"{row['arch_id']}-seed{int(seed)}", "train_seed": int(seed)})
    out = pd.DataFrame(rows, columns=df.columns)
    out["train_seed"] = out["train_seed"].astype("Int64")
    return out
