"""LiteTransformerSearch's method: 3-objective evolution with every candidate measured."""

from __future__ import annotations

from ...arch import ArchSpec
from .. import METHODS, SearchProblem, SearchResult
from .evolution import Candidate, EvolutionarySearch, SearchConfig


class LTS:
    """``search.method: lts``: LTS's evolutionary search over the configured objectives."""

    def run(self, problem: SearchProblem) -> SearchResult:
        cfg = SearchConfig.from_config(problem.settings)

        def score(specs: list[ArchSpec]):
            table = problem.scorer.table(specs)
            return table[[c for c in table.columns if not c.endswith("_seconds")]]

        search = EvolutionarySearch(problem.space, cfg, problem.measure, score, problem.initial)
        archive, frontier = search.run()
        archive["on_front"] = archive["arch_id"].isin(set(frontier["arch_id"]))
        return SearchResult(archive, frontier, cfg.objectives(), {"rejected": search.rejected})


METHODS.add("lts", LTS())

__all__ = ["LTS", "Candidate", "EvolutionarySearch", "SearchConfig"]
