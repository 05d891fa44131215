"""LiteTransformerSearch's method: 3-objective evolution over the configured objectives."""

from __future__ import annotations

from paretolm.search.methods import METHODS, SearchProblem, SearchResult
from paretolm.search.methods.lts.evolution import Candidate, EvolutionarySearch, SearchConfig


class LTS:
    """``search.method: lts``: LTS's evolutionary search (settings in ``search.lts``)."""

    def run(self, problem: SearchProblem) -> SearchResult:
        cfg = SearchConfig.from_config(problem.settings)
        search = EvolutionarySearch(problem.space, cfg, problem.hardware, problem.score, problem.initial_specs())
        archive, frontier = search.run()
        archive["in_bounds"] = True  # out-of-bounds children were rejected before evaluation
        return SearchResult(archive, frontier, cfg.objectives(), {"rejected": search.rejected})


METHODS.add("lts", LTS())

__all__ = ["LTS", "Candidate", "EvolutionarySearch", "SearchConfig"]
