"""Stage ``proxies``: every configured proxy for every sampled architecture, with its cost."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import provenance, read_table, write_table
from paretolm.proxies import Scorer

log = logging.getLogger(__name__)

NAME = "proxies"
WILDCARDS = ("space",)


def section(config: Mapping[str, Any]) -> dict[str, Any]:
    """The proxies section, its data block made self-contained: a dataset or tokenizer named
    there carries the ``datasets`` / ``tokenizers`` sections it is looked up in (so editing a
    dataset's definition reruns the proxies that read it)."""
    part = copy.deepcopy(dict(config["proxies"]))
    data = part.get("data")
    if data:
        data = dict(data)
        for key in ("datasets", "tokenizers"):
            data.setdefault(key, copy.deepcopy(config[key]))
        part["data"] = data
    return part


def config_part(config: Mapping[str, Any], **wildcards: str) -> dict[str, Any]:
    """The proxies section (the same for every space)."""
    return {"proxies": section(config)}


def run(part: Mapping[str, Any], *, space: str, samples: str | Path, out: str | Path) -> pd.DataFrame:
    """Score the architectures in ``samples`` with every proxy of ``part`` -> ``out``."""
    scorer = Scorer.from_part(part["proxies"])
    specs = [ArchSpec.from_json(s) for s in read_table(samples)["spec"]]
    df = scorer.table(specs)
    write_table(df, out, provenance(NAME, part, [samples], wildcards={"space": space}))
    log.info("scored %d architectures with %s", len(df), scorer.names)
    return df
