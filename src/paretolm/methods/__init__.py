"""Search methods: each one module or folder here, registered in ``METHODS``, chosen per run by
config ``search.method``.

A method takes a ``SearchProblem`` (the space, the objectives, the bounds, a ``measure`` function
for the hardware numbers and a ``Scorer`` for the proxies, the profile stage's table as a start)
and returns a ``SearchResult``: the archive of every candidate it evaluated and the frontier, in
the common columns (``arch_id``, ``spec``, ``iteration``, ``origin``, ``parents``, the proxies,
the measurements, ``feasible``), which the report, audit and validation read whatever the method.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from ..arch import ArchSpec
from ..registry import Registry
from ..spaces import SearchSpace

Measure = Callable[[ArchSpec], Mapping[str, Any]]


@dataclass
class SearchProblem:
    """Everything a method needs for one run on one hardware target."""

    space: SearchSpace
    settings: Mapping[str, Any]  # the validated ``search`` config section
    measure: Measure  # hardware numbers of one spec (through the measurement cache)
    scorer: Any  # paretolm.proxies.Scorer: the configured proxies and their settings
    initial: pd.DataFrame | None = None  # the profile stage's table: measured samples with proxies


@dataclass
class SearchResult:
    archive: pd.DataFrame
    frontier: pd.DataFrame
    objectives: dict[str, str]
    stats: dict[str, Any] = field(default_factory=dict)


class SearchMethod(Protocol):
    def run(self, problem: SearchProblem) -> SearchResult: ...


METHODS: Registry[SearchMethod] = Registry("search method", package=__name__)


def get(name: str) -> SearchMethod:
    return METHODS.get(name)


__all__ = ["METHODS", "Measure", "SearchMethod", "SearchProblem", "SearchResult", "get"]
