"""LiteTransformerSearch's method: 3-objective evolution over the configured objectives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paretolm.core.settings import check, setting
from paretolm.core.spaces import SearchSpace
from paretolm.search.methods import METHODS, Method, MethodSettings, SearchProblem, SearchResult
from paretolm.search.methods.lts.evolution import Candidate, EvolutionarySearch, SearchConfig

MAX = 10_000_000


@dataclass(frozen=True)
class LTSSettings(MethodSettings):
    """LiteTransformerSearch's evolution; defaults are the paper's settings."""

    iterations: int = setting(30, minimum=0, maximum=MAX)
    population: int = setting(100, minimum=2, maximum=MAX)
    parents: int = setting(20, minimum=1, maximum=MAX)
    mutations: int = setting(40, minimum=0, maximum=MAX)
    mutation_prob: float = setting(0.3, exclusive_minimum=0, maximum=1)
    crossovers: int = setting(40, minimum=0, maximum=MAX)
    max_attempts: int = setting(20, minimum=1, maximum=MAX, doc="Draws per wanted child before giving up on it.")

    def __post_init__(self) -> None:
        check(self, "search.lts")


class LTS(Method):
    """``search.method: lts``: LTS's evolutionary search (settings in ``search.lts``)."""

    settings = LTSSettings
    test_settings = {"iterations": 3, "population": 10, "parents": 4, "mutations": 5, "crossovers": 5}

    def check(self, config: Mapping[str, Any], space: SearchSpace) -> None:
        block = config["search"]["lts"]
        if block["parents"] > block["population"]:
            raise ValueError(
                f"search.lts.parents: {block['parents']} is more than search.lts.population={block['population']}"
            )

    def run(self, problem: SearchProblem) -> SearchResult:
        cfg = SearchConfig.from_config(problem.settings)
        search = EvolutionarySearch(problem.space, cfg, problem.hardware, problem.score, problem.initial_specs())
        archive, frontier = search.run()
        archive["in_bounds"] = True  # out-of-bounds children were rejected before evaluation
        return SearchResult(archive, frontier, cfg.objectives(), {"rejected": search.rejected})


METHODS.add("lts", LTS())

__all__ = ["LTS", "LTSSettings", "Candidate", "EvolutionarySearch", "SearchConfig"]
