"""MeRino's method: entropy-maximising evolution under a FLOPs / parameter budget."""

from __future__ import annotations

import dataclasses

import pandas as pd

from paretolm.core.arch import ArchSpec
from paretolm.search.methods import METHODS, SearchProblem, SearchResult
from paretolm.search.methods.merino.search import MerinoConfig, merino_search, random_search
from paretolm.search.methods.merino.search import SearchResult as MerinoResult


class MeRino:
    """``search.method: merino``: MeRino's evolution (settings in ``search.merino``) maximises its
    proxy under the budgets with no device in the loop, as the paper does. The ``top`` highest
    scoring feasible candidates then get hardware numbers (measured, or verified), so the run has
    a frontier over the configured objectives like every other method."""

    def run(self, problem: SearchProblem) -> SearchResult:
        block = problem.block
        fields = {f.name for f in dataclasses.fields(MerinoConfig)} - {"seq_len", "seed"}
        cfg = MerinoConfig(**{k: block[k] for k in fields}, seq_len=int(problem.scorer.seq_len), seed=problem.seed)
        found = merino_search(problem.space, proxy=block["proxy"], config=cfg)
        archive = found.archive.rename(columns={"feasible": "in_bounds"})
        specs = [ArchSpec.from_json(s) for s in archive["spec"]]
        # the scorer's proxies (the objectives and bounds read them) replace MeRino's own counts
        scores = problem.score(specs).drop(columns="arch_id")
        archive = pd.concat([archive.drop(columns=[c for c in scores.columns if c in archive.columns]),
                             scores], axis=1)
        bounds = problem.bounds
        archive["in_bounds"] = [bool(ok) and bounds.params_ok(r)
                                for ok, r in zip(archive["in_bounds"], archive.to_dict("records"), strict=True)]
        feasible = archive[archive["in_bounds"]]
        top = feasible.sort_values("score", ascending=False, kind="stable").head(int(block["top"]))
        numbers = problem.hardware([ArchSpec.from_json(s) for s in top["spec"]])
        hw = pd.DataFrame(numbers, index=top.index)
        archive = archive.join(hw.drop(columns=[c for c in hw.columns if c in archive.columns]))
        archive["hardware"] = archive.index.isin(top.index)
        stats = {k: v for k, v in found.stats.items() if k != "config"}
        stats["best"] = found.best.arch_id if found.best is not None else None
        return SearchResult(archive, archive.iloc[0:0], problem.objectives, stats)


METHODS.add("merino", MeRino())

__all__ = ["MeRino", "MerinoConfig", "MerinoResult", "merino_search", "random_search"]
