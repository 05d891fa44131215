"""Stage ``sample``: ``sample.n`` distinct architectures drawn from one search space, seeded."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from paretolm.config import space_content
from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import provenance, write_table
from paretolm.core.spaces import SearchSpace

log = logging.getLogger(__name__)

NAME = "sample"
WILDCARDS = ("space",)


def config_part(config: Mapping[str, Any], **wildcards: str) -> dict[str, Any]:
    """Sample size and seed, and the space's name and definition."""
    space = wildcards["space"]
    return {
        "sample": {k: config["sample"][k] for k in ("n", "seed")},
        "space": space,
        "space_def": space_content(config, space),
    }


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], Mapping):
        return json.dumps(list(value), sort_keys=True)
    return list(value) if isinstance(value, tuple) else value


def samples_frame(specs: Sequence[ArchSpec], space: str) -> pd.DataFrame:
    """One row per spec: ``arch_id``, ``spec`` (canonical JSON), ``space`` and every gene as a
    column (per-layer genes as list columns; MeRino blocks as JSON)."""
    rows = []
    for spec in specs:
        row: dict[str, Any] = {"arch_id": spec.arch_id, "spec": spec.to_json(), "space": space}
        row.update({k: _cell(v) for k, v in spec.to_dict().items()})
        rows.append(row)
    return pd.DataFrame(rows)


def run(part: Mapping[str, Any], *, space: str, space_file: str | Path, out: str | Path) -> pd.DataFrame:
    """Draw the architectures of ``space`` (defined in ``space_file``) -> ``out``."""
    spec_space = SearchSpace.from_yaml(space_file)
    specs = spec_space.sample(int(part["sample"]["n"]), seed=int(part["sample"]["seed"]))
    df = samples_frame(specs, space)
    write_table(df, out, provenance(NAME, part, [space_file], wildcards={"space": space}))
    log.info("sampled %d architectures from %s", len(df), space)
    return df
