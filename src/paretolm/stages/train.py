"""Stage ``train``: train one selected architecture from scratch (resumable)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..arch import ArchSpec
from ..artifacts import provenance

NAME = "train"
WILDCARDS = ("arch_id",)

# Keys of the train section that only route jobs (the job's memory and minutes).
ROUTING_KEYS = ("mem_mb", "runtime")


def section(config: Mapping[str, Any]) -> dict[str, Any]:
    """The train section without its routing keys."""
    return {k: v for k, v in config["train"].items() if k not in ROUTING_KEYS}


def data_part(config: Mapping[str, Any]) -> dict[str, Any]:
    """What every validation stage depends on: training and the datasets and tokenizers."""
    for key in ("dataset", "tokenizer"):
        if config["train"][key] is None:
            raise ValueError(f"train.{key}: not set; the validation stages train on a {key} named under "
                             f"{key}s (see config/config.yaml)")
    return {"train": section(config), "datasets": config["datasets"], "tokenizers": config["tokenizers"]}


def config_part(config: Mapping[str, Any], **wildcards: str) -> dict[str, Any]:
    """Training settings, datasets and tokenizers (the same for every architecture)."""
    return data_part(config)


def run(part: Mapping[str, Any], *, arch_id: str, archs: str | os.PathLike, out_dir: str | os.PathLike,
        progress: bool = True) -> dict[str, Any]:
    """Train ``arch_id`` (a row of ``archs``) -> ``out_dir``: ``model/``, ``train_log.parquet`` and
    ``train_summary.json`` (``out_dir/checkpoint`` while it runs, so a killed job resumes)."""
    from ..data import data_config
    from ..training import _hyper, data_block, selected_row, train

    spec = ArchSpec.from_json(selected_row(archs, arch_id)["spec"])
    cfg = _hyper(part["train"])
    ids = data_config(data_block(part)).split("train").ids
    prov = provenance(NAME, part, [archs], wildcards={"arch_id": arch_id}, spec=spec.to_json())
    return train(spec, ids, cfg, out_dir, progress=progress, prov=prov)
