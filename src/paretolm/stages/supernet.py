"""Stage ``supernet``: train the weight-sharing supernet of one space, which the ``supernet_loss``
proxy scores candidates with (``paretolm.supernet``; resumable)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from paretolm.config import space_content
from paretolm.core import lazy
from paretolm.core.artifacts import provenance
from paretolm.core.spaces import SearchSpace
from paretolm.data import train_data
from paretolm.proxies.supernet_loss import SupernetSettings
from paretolm.stages.train import data_part

# the stage's heavy part, imported when it runs: building the job graph reads every stage module
supernet = lazy.module("paretolm.supernet")

NAME = "supernet"
WILDCARDS = ("space",)

# Settings that say where the supernet is read from, not how it is trained.
LOCATION_KEYS = ("space", "dir")


def settings(config: Mapping[str, Any]) -> SupernetSettings:
    """The ``proxies.settings.supernet_loss`` block (its defaults when the config has none)."""
    return SupernetSettings(**((config["proxies"].get("settings") or {}).get("supernet_loss") or {}))


def part(config: Mapping[str, Any], space: str, definition: Mapping[str, Any]) -> dict[str, Any]:
    """The train dataset and tokenizer (not the train recipe: the supernet has its own), the
    supernet's training settings and the space's definition."""
    data = data_part(config)
    train = {k: data["train"][k] for k in ("dataset", "tokenizer", "cache_dir") if k in data["train"]}
    trained = {k: v for k, v in vars(settings(config)).items() if k not in LOCATION_KEYS}
    return {
        "train": train,
        "datasets": data["datasets"],
        "tokenizers": data["tokenizers"],
        "supernet_loss": trained,
        "space": {"name": space, "definition": dict(definition)},
    }


def config_part(config: Mapping[str, Any], **wildcards: str) -> dict[str, Any]:
    return part(config, wildcards["space"], space_content(config, wildcards["space"]))


def run(
    part: Mapping[str, Any], *, space: str, space_file: str | os.PathLike, out: str | os.PathLike, progress: bool = True
) -> dict[str, Any]:
    """Train the supernet of ``space`` (its file ``space_file``) -> the folder ``out``."""
    cfg = SupernetSettings(**part["supernet_loss"], space=space)
    dc = train_data(part)
    vocab = len(dc.load_tokenizer())
    train_ids, valid_ids = dc.split("train").ids, dc.split("validation").ids
    prov = provenance(NAME, part, [space_file], wildcards={"space": space})
    return supernet.train_supernet(
        SearchSpace.from_yaml(Path(space_file)), train_ids, valid_ids, vocab, cfg, out, progress=progress, prov=prov
    )
