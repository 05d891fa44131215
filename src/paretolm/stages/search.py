"""Stage ``search``: one search method on one hardware target, with the measurement strategy of
``search.measure``, writing the archive of every candidate, the frontier, the run's report (JSON)
and its figures (the frontier; hypervolume against measurements spent).

The rule runs any method (wildcard ``method``) into ``results/search/{method}/{hardware}/``, so
several methods can be compared on one target in one run; ``results/pareto_{hardware}.parquet``
is the configured method's frontier."""

from __future__ import annotations

import copy
import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from paretolm.config import SEARCH_KEYS, measurement_settings, method_space, space_content
from paretolm.core import lazy
from paretolm.core.artifacts import atomic_path, provenance, read_provenance, read_table, write_table
from paretolm.core.spaces import SearchSpace
from paretolm.data import data_config
from paretolm.hardware.profiling import Profiler, settings_from_params
from paretolm.hardware.sources import ProfilerSource, source_for
from paretolm.proxies import Scorer
from paretolm.search.driver import search
from paretolm.search.methods import SearchProblem, measure_each
from paretolm.stages import proxies as proxies_stage

# the stage's heavy part, imported when it runs: building the job graph reads every stage module
figures = lazy.module("paretolm.search.figures")

log = logging.getLogger(__name__)

NAME = "search"
WILDCARDS = ("method", "hardware")


def section(config: Mapping[str, Any], method: str) -> dict[str, Any]:
    """The search section as ``method`` reads it: the shared keys, ``method`` and its own block
    only (so editing another method's block reruns nothing here), its space resolved; the
    ``verify`` block only when it is used; a data block made self-contained as the proxies'."""
    search = config["search"]
    part = {k: copy.deepcopy(v) for k, v in search.items() if k in SEARCH_KEYS}
    part["method"] = method
    part["space"] = method_space(config, method)
    block = copy.deepcopy(dict(search.get(method) or {}))
    block.pop("space", None)
    if block.get("data"):
        block["data"] = {
            **block["data"],
            **{k: copy.deepcopy(config[k]) for k in ("datasets", "tokenizers") if k not in block["data"]},
        }
    part[method] = block
    if part["measure"] != "verify":
        part.pop("verify")
    return part


def config_part(config: Mapping[str, Any], **wildcards: str) -> dict[str, Any]:
    """The method's search section and its space's definition, the proxies (candidates are scored
    like the samples) and the target's measurement settings."""
    method = wildcards.get("method") or config["search"]["method"]
    part = section(config, method)
    return {
        "search": part,
        "space_def": space_content(config, part["space"]),
        **proxies_stage.config_part(config),
        **measurement_settings(config, wildcards["hardware"]),
    }


def load_data(block: Mapping[str, Any] | None) -> Any:
    """The token ids of a method's ``data`` block (its ``split``, default train), or None."""
    if not block:
        return None
    return data_config(block).split(str(block.get("split", "train"))).ids


def run(
    part: Mapping[str, Any],
    *,
    method: str,
    hardware: str,
    profile: str | Path,
    space_file: str | Path,
    cache_dir: str | Path | None,
    frontier: str | Path,
    archive: str | Path,
    report: str | Path | None = None,
    plot: str | Path | None = None,
    convergence: str | Path | None = None,
    measure_fn: Callable[..., dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """Search on ``hardware`` with ``method`` from the profiled samples in ``profile``; writes
    ``archive``, ``frontier`` and, when asked, the ``report`` (JSON), the frontier figure ``plot``
    and the hypervolume-against-measurements figure ``convergence``.

    ``measure_fn`` replaces the target's measurement (``paretolm.hardware.profiling.measure``'s signature),
    e.g. with ``paretolm.hardware.replay.ReplayDevice`` in tests; its results are cached like real ones, so
    give it a cache folder of its own."""
    settings = part["search"]
    if settings["method"] != method:
        raise ValueError(f"method: the config part is for {settings['method']!r}, not {method!r}")
    space = SearchSpace.from_yaml(space_file)
    if measure_fn is None:
        source = source_for(hardware, part, cache_dir)  # measures here, imports, or asks a server
    else:
        source = ProfilerSource(
            "injected", Profiler(hardware, settings_from_params(part), cache_dir, measure_fn=measure_fn)
        )
    problem = SearchProblem(
        space=space,
        settings=settings,
        hardware=measure_each(source),
        scorer=Scorer.from_part(part["proxies"]),
        initial=read_table(profile),
        data=load_data(settings[method].get("data")),
        seq_len=int(part["profile"]["seq_len"]),
    )
    t0 = time.perf_counter()
    result = search(problem, source, reference=settings["reference"])
    source_prov = source.provenance()
    stats = {
        **result.stats,
        "objectives": result.objectives,
        "seconds": time.perf_counter() - t0,
        **source_prov,
        # what the search spent (profile, search, total) and what the source did (measured, cache hits)
        "measurements": {**result.stats["measurements"], **source_prov["measurements"]},
    }
    inputs = [profile, space_file]
    wildcards = {"method": method, "hardware": hardware}
    summary = {k: v for k, v in stats.items() if k != "trace"}
    write_table(result.archive, archive, provenance(NAME, part, inputs, wildcards=wildcards, **summary))
    write_table(result.frontier, frontier, provenance(NAME, part, [*inputs, archive], wildcards=wildcards, **summary))
    if report:
        with atomic_path(report) as tmp:
            tmp.write_text(json.dumps({"space": space.name, "hardware": hardware, **stats}, indent=1, default=str))
    title = f"{method} ({settings['measure']}) on {space.name}, {hardware}"
    if plot:
        figures.frontier_figure(result.archive, result.frontier, result.objectives, plot, title=title)
    if convergence:
        figures.hypervolume_figure({f"{method} ({settings['measure']})": stats["trace"]}, convergence, title=title)
    log.info(
        "search %s on %s: archive %d, frontier %d, %d measurements (%s), hypervolume %.6g, %.1f s",
        method,
        hardware,
        len(result.archive),
        len(result.frontier),
        stats["measurements"]["search"],
        settings["measure"],
        stats["hypervolume"],
        stats["seconds"],
    )
    return result.frontier


def publish(
    frontier: str | Path, out: str | Path, plot: str | Path | None = None, plot_out: str | Path | None = None
) -> pd.DataFrame:
    """Copy a method's frontier (with its provenance, so the audit checks it against that run's
    archive) and figure to where the workflow's target is (``results/pareto_{hardware}``)."""
    table = read_table(frontier)
    write_table(table, out, read_provenance(frontier))
    if plot and plot_out:
        with atomic_path(plot_out) as tmp:
            shutil.copyfile(plot, tmp)
    log.info("%s -> %s (%d architectures)", frontier, out, len(table))
    return table
