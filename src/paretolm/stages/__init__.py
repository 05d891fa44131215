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

import json
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from paretolm.core.registry import Registry

# Stage name -> module, in DAG order: the search half, then the validation half and the export of
# its trained frontiers (supernet comes before every stage that scores, since supernet_loss reads
# what it trains).
STAGES: Registry[ModuleType] = Registry("stage")
for _name in (
    "sample",
    "supernet",
    "proxies",
    "profile",
    "search",
    "select",
    "train",
    "evaluate",
    "correlate",
    "export",
):
    STAGES.add(_name, f"paretolm.stages.{_name}")


def stage(name: str) -> ModuleType:
    """The module of stage ``name``; ValueError naming the known stages."""
    return STAGES.get(name)


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
