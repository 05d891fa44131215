"""MeRino's method: entropy-maximising evolution under a FLOPs / parameter budget."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pandas as pd

from paretolm.core.arch import ArchSpec
from paretolm.core.spaces import SearchSpace
from paretolm.proxies import PROXIES
from paretolm.search.methods import METHODS, Method, SearchProblem, SearchResult
from paretolm.search.methods.merino.search import MerinoConfig, merino_search, random_search
from paretolm.search.methods.merino.search import SearchResult as MerinoResult


def check_analytic(name: str, key: str, method: str) -> None:
    """``name`` is a registered proxy a method can score without data or training."""
    if name not in PROXIES:
        raise ValueError(f"{key}: unknown proxy {name!r} (known: {', '.join(PROXIES.names())})")
    p = PROXIES.get(name)
    if p.needs_data or p.trained:
        raise ValueError(f"{key}: {method} scores candidates with analytic proxies only, not {name!r}")


class MeRino(Method):
    """``search.method: merino``: MeRino's evolution (settings in ``search.merino``) maximises its
    proxy under the budgets with no device in the loop, as the paper does. The ``top`` highest
    scoring feasible candidates then get hardware numbers (measured, or verified), so the run has
    a frontier over the configured objectives like every other method."""

    settings = MerinoConfig
    backbone = "merino"
    test_settings = {"population": 16, "iterations": 200, "init_samples": 8, "max_flops": 2e6, "top": 6}

    def check(self, config: Mapping[str, Any], space: SearchSpace) -> None:
        block = config["search"]["merino"]
        if block["max_flops"] is None and block["max_params"] is None:
            raise ValueError("search.merino.max_flops: give a FLOPs and/or a parameter budget (max_params)")
        check_analytic(block["proxy"], "search.merino.proxy", "merino")

    def run(self, problem: SearchProblem) -> SearchResult:
        cfg = dataclasses.replace(problem.options, seq_len=int(problem.scorer.seq_len), seed=problem.seed)
        found = merino_search(problem.space, proxy=cfg.proxy, config=cfg)
        archive = found.archive.rename(columns={"feasible": "in_bounds"})
        specs = [ArchSpec.from_json(s) for s in archive["spec"]]
        # the scorer's proxies (the objectives and bounds read them) replace MeRino's own counts
        scores = problem.score(specs).drop(columns="arch_id")
        archive = pd.concat([archive.drop(columns=[c for c in scores.columns if c in archive.columns]), scores], axis=1)
        bounds = problem.bounds
        archive["in_bounds"] = [
            bool(ok) and bounds.params_ok(r)
            for ok, r in zip(archive["in_bounds"], archive.to_dict("records"), strict=True)
        ]
        feasible = archive[archive["in_bounds"]]
        top = feasible.sort_values("score", ascending=False, kind="stable").head(cfg.top)
        numbers = problem.hardware([ArchSpec.from_json(s) for s in top["spec"]])
        hw = pd.DataFrame(numbers, index=top.index)
        archive = archive.join(hw.drop(columns=[c for c in hw.columns if c in archive.columns]))
        archive["hardware"] = archive.index.isin(top.index)
        stats = {k: v for k, v in found.stats.items() if k != "config"}
        stats["best"] = found.best.arch_id if found.best is not None else None
        return SearchResult(archive, archive.iloc[0:0], problem.objectives, stats)


METHODS.add("merino", MeRino())

__all__ = ["MeRino", "MerinoConfig", "MerinoResult", "check_analytic", "merino_search", "random_search"]
