"""Where a hardware target's measurements come from: its ``source``.

* ``local`` (the default): this machine measures, through the measurement cache
  (``paretolm.hardware.profiling.Profiler``);
* ``import``: tables that ``paretolm measure`` wrote on the device itself, copied into a folder
  (``import_dir``, default ``measurements/<target>``); nothing is measured here;
* ``remote``: a ``paretolm serve`` process on the device measures each architecture on request,
  and this machine keeps a cache of its answers.

The profile and search stages get the measure function of a target from ``source_for``; whatever
the source, it is called with one ``ArchSpec`` and returns the same measurement columns.
Step-by-step use with a board: docs/hardware.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from paretolm.core.spaces import SearchSpace
from paretolm.hardware.profiling import Profiler, check_available, settings_from_params
from paretolm.hardware.runtimes import get as get_runtime
from paretolm.hardware.runtimes import resolve
from paretolm.hardware.sources.base import (
    DEFAULT_TOKEN_ENV,
    SOURCES,
    MissingMeasurements,
    ProfilerSource,
    Source,
    fingerprint_problem,
    import_dir,
    measure_command,
    settings_difference,
    target_source,
)
from paretolm.hardware.sources.imported import ImportSource
from paretolm.hardware.sources.remote import remote_source, token_from_env


def check_target(name: str, target: Mapping[str, Any]) -> None:
    """Raise ValueError naming target ``name`` and what is missing if this machine cannot get its
    measurements: a ``local`` target must run here; a ``remote`` one needs its token in the
    environment; an ``import`` one needs nothing here (missing files are named by the profile stage)."""
    source = target_source(name, target)
    if source == "local":
        check_available(name, target)
    elif source == "remote":
        token_from_env(name, target["remote"].get("token_env") or DEFAULT_TOKEN_ENV)


def check_space(name: str, target: Mapping[str, Any], space: SearchSpace) -> None:
    """Raise ValueError naming target ``name`` and ``space`` when the target's runtime cannot run
    the space's architectures (llama.cpp runs llama specs only)."""
    runtime = get_runtime(resolve(target)["runtime"])
    reason = runtime.supports(space.sample(1, seed=0)[0])
    if reason:
        raise ValueError(f"hardware target {name!r}: {reason} (space {space.name!r})")


def source_for(hardware: str, part: Mapping[str, Any], cache_dir: str | Path | None) -> Source:
    """The measure function of target ``hardware`` from a stage's config part (``hardware`` and
    ``profile``, as ``paretolm.config.measurement_settings`` gives them)."""
    target = part["hardware"]
    settings = settings_from_params(part)
    source = target_source(hardware, target)
    if source == "import":
        return ImportSource(hardware, target, settings, import_dir(hardware, target))
    if source == "remote":
        return remote_source(hardware, target, settings, cache_dir)
    return local_source(hardware, settings, cache_dir)


def local_source(hardware: str, settings: Any, cache_dir: str | Path | None) -> Source:
    """This machine measures, through the cache."""
    return ProfilerSource("local", Profiler(hardware, settings, cache_dir))


__all__ = [
    "DEFAULT_TOKEN_ENV",
    "SOURCES",
    "MissingMeasurements",
    "ProfilerSource",
    "Source",
    "check_target",
    "fingerprint_problem",
    "import_dir",
    "local_source",
    "measure_command",
    "settings_difference",
    "source_for",
    "target_source",
]
