"""Random search: the baseline every paper compares with, at a chosen number of candidates."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pandas as pd

from paretolm.core.arch import ArchSpec
from paretolm.core.settings import check, setting
from paretolm.search.methods import METHODS, Method, MethodSettings, SearchProblem, SearchResult


@dataclass(frozen=True)
class RandomSettings(MethodSettings):
    """Uniform random sampling (the profiled samples first), every candidate evaluated."""

    candidates: int = setting(100, minimum=1, maximum=10_000_000)
    max_attempts: int = setting(20, minimum=1, maximum=10_000_000, doc="Rounds of draws before giving up.")

    def __post_init__(self) -> None:
        check(self, "search.random")


class RandomSearch(Method):
    """``search.method: random`` (settings in ``search.random``): ``candidates`` distinct
    architectures within the parameter bounds, the profile stage's samples first, then uniform
    draws from the space (seeded), all evaluated in one batch. Set ``candidates`` to another run's
    number of measurements to compare at an equal measurement budget."""

    settings = RandomSettings
    test_settings = {"candidates": 20}

    def run(self, problem: SearchProblem) -> SearchResult:
        options = problem.options
        want = options.candidates
        bounds = problem.bounds
        chosen: dict[str, tuple[ArchSpec, str]] = {}

        def offer(specs: list[ArchSpec], origin: str) -> None:
            scores = problem.score(specs)
            for spec, row in zip(specs, scores.to_dict("records"), strict=True):
                if len(chosen) < want and spec.arch_id not in chosen and bounds.params_ok(row):
                    chosen[spec.arch_id] = (spec, origin)

        offer(problem.initial_specs()[:want], "sample")
        rng = random.Random(problem.seed)
        for _ in range(options.max_attempts):
            if len(chosen) >= want:
                break
            offer([problem.space.sample_genome(rng)[1] for _ in range(want - len(chosen))], "random")
        specs = [spec for spec, _ in chosen.values()]
        scores = problem.score(specs)
        hw = pd.DataFrame(problem.hardware(specs))
        archive = pd.concat([scores, hw.drop(columns=[c for c in hw.columns if c in scores.columns])], axis=1)
        archive.insert(1, "spec", [s.to_json() for s in specs])
        archive["origin"] = [origin for _, origin in chosen.values()]
        return SearchResult(archive, archive.iloc[0:0], problem.objectives, {"short_of_candidates": want - len(specs)})


METHODS.add("random", RandomSearch())

__all__ = ["RandomSearch", "RandomSettings"]
