"""The workflow's stages: one module each, listed in ``STAGES`` in the order of the DAG.

A stage module declares

* ``NAME``: the stage's name, also the ``stage`` recorded in the provenance of what it writes;
* ``WILDCARDS``: the names of its rule's wildcards (a tuple, empty for a single job);
* ``config_part(config, **wildcards) -> dict``: the subset of the validated config that can change
  its output for those wildcards;
* ``run(part, **job)``: the stage itself, given its config part and, by name, the wildcards and
  the input and output paths of its job.

The table is the one place the stages are named. Each rule passes ``config_part(name, config,
**wildcards)`` to its script as the param ``part``: Snakemake records the params of every job and
its default rerun triggers include them, so a config edit reruns exactly the stages whose part
changed (and what depends on them), and nothing is written before a job runs. The script hands
``part`` to the stage's ``run``, which records it and its hash in the provenance of its artifacts;
``paretolm audit`` recomputes the part from the current config to tell which artifacts are stale.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

# Stage name -> module, in DAG order: the search half, then the validation half.
STAGE_MODULES: dict[str, str] = {
    "sample": "paretolm.stages.sample",
    "proxies": "paretolm.stages.proxies",
    "profile": "paretolm.stages.profile",
    "search": "paretolm.stages.search",
    "select": "paretolm.stages.select",
    "train": "paretolm.stages.train",
    "evaluate": "paretolm.stages.evaluate",
    "correlate": "paretolm.stages.correlate",
}


class StageTable(Mapping[str, ModuleType]):
    """Stage name -> stage module, each imported the first time it is looked up."""

    def __init__(self, modules: Mapping[str, str]):
        self._modules = dict(modules)

    def __getitem__(self, name: str) -> ModuleType:
        if name not in self._modules:
            raise KeyError(f"stage: unknown stage {name!r} (known: {', '.join(self._modules)})")
        return importlib.import_module(self._modules[name])

    def __contains__(self, name: object) -> bool:
        return name in self._modules

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __repr__(self) -> str:
        return f"StageTable({list(self._modules)})"


STAGES = StageTable(STAGE_MODULES)


def stage(name: str) -> ModuleType:
    """The module of stage ``name``; ValueError naming the known stages."""
    try:
        return STAGES[name]
    except KeyError as e:
        raise ValueError(e.args[0]) from None


def canonical(part: Mapping[str, Any]) -> dict[str, Any]:
    """``part`` as plain JSON data with every mapping's keys sorted (tuples become lists, other
    objects strings), so equal parts have equal ``repr``, which Snakemake compares across runs."""
    return json.loads(json.dumps(part, sort_keys=True, default=str))


def config_part(name: str, config: Mapping[str, Any], **wildcards: Any) -> dict[str, Any]:
    """The config part of stage ``name`` for a job's wildcards (those the stage does not declare
    are ignored), in canonical form."""
    module = stage(name)
    declared = {k: str(v) for k, v in wildcards.items() if k in module.WILDCARDS}
    return canonical(module.config_part(config, **declared))
