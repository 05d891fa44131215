"""Stage ``search``: the configured search method (``search.method``) on one hardware target,
writing the archive of every candidate, the frontier and its figure."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..artifacts import provenance, read_table, write_table
from ..config import measurement_settings, space_content
from . import proxies as proxies_stage

log = logging.getLogger(__name__)

NAME = "search"
WILDCARDS = ("hardware",)


def config_part(config: Mapping[str, Any], **wildcards: str) -> dict[str, Any]:
    """The search section and its space's definition, the proxies (children are scored like the
    samples) and the target's measurement settings."""
    return {
        "search": dict(config["search"]),
        "space_def": space_content(config, config["search"]["space"]),
        **proxies_stage.config_part(config),
        **measurement_settings(config, wildcards["hardware"]),
    }


def run(part: Mapping[str, Any], *, hardware: str, profile: str | Path, space_file: str | Path,
        cache_dir: str | Path | None, frontier: str | Path, archive: str | Path,
        plot: str | Path | None = None) -> pd.DataFrame:
    """Search on ``hardware`` from the profiled samples in ``profile``; writes ``archive``,
    ``frontier`` and, when asked, the frontier figure ``plot``."""
    from ..measurement import source_for
    from ..methods import SearchProblem
    from ..methods import get as get_method
    from ..proxies import Scorer
    from ..spaces import SearchSpace

    space = SearchSpace.from_yaml(space_file)
    profiler = source_for(hardware, part, cache_dir)  # measures here, imports, or asks a server
    problem = SearchProblem(space=space, settings=part["search"], measure=profiler,
                            scorer=Scorer.from_part(part["proxies"]), initial=read_table(profile))
    t0 = time.perf_counter()
    result = get_method(part["search"]["method"]).run(problem)
    stats = {"method": part["search"]["method"], "measurements": profiler.counts(), **result.stats,
             "objectives": result.objectives, "seconds": time.perf_counter() - t0}
    inputs = [profile, space_file]
    wildcards = {"hardware": hardware}
    write_table(result.archive, archive, provenance(NAME, part, inputs, wildcards=wildcards, **stats))
    write_table(result.frontier, frontier, provenance(NAME, part, [*inputs, archive], wildcards=wildcards, **stats))
    if plot:
        from ..plots import frontier_figure

        frontier_figure(result.archive, result.frontier, result.objectives, plot,
                        title=f"{space.name} on {hardware}")
    log.info("search on %s: archive %d, frontier %d, %s", hardware, len(result.archive), len(result.frontier), stats)
    return result.frontier
