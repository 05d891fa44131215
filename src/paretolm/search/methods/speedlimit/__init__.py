"""SpeedLimit's method: a predictor-narrowed space, then evolution under an upper latency bound."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from paretolm.core.arch import ArchSpec
from paretolm.core.spaces import SearchSpace
from paretolm.hardware.predictors.committee import KINDS, fit
from paretolm.search.methods import METHODS, Method, SearchProblem, SearchResult
from paretolm.search.methods.merino import check_analytic
from paretolm.search.methods.speedlimit.search import (
    SpeedLimitConfig,
    int8_latency,
    int8_measure_fn,
    measure_table,
    speedlimit_search,
)


class SpeedLimit(Method):
    """``search.method: speedlimit`` (settings in ``search.speedlimit``): a latency predictor
    fitted on the profile stage's measurements of this target prunes every candidate predicted
    above ``search.bounds.latency_ms_max`` by more than ``margin``; the others get hardware
    numbers, and evolution maximises ``search.objectives.proxy`` among those under the bound.
    SpeedLimit measures int8 models: run it on a ``cpu_int8`` target (or any other)."""

    settings = SpeedLimitConfig
    latency_bound = True
    test_settings = {"population": 8, "iterations": 2, "parents": 3, "mutations": 4, "crossovers": 2}

    def check(self, config: Mapping[str, Any], space: SearchSpace) -> None:
        search = config["search"]
        if not search["objectives"]["proxy"]:
            raise ValueError("search.objectives.proxy: speedlimit maximises a proxy; name one")
        check_analytic(search["objectives"]["proxy"], "search.objectives.proxy", "speedlimit")

    def run(self, problem: SearchProblem) -> SearchResult:
        cfg = dataclasses.replace(problem.options, seq_len=int(problem.scorer.seq_len), seed=problem.seed)
        cap = problem.bounds.latency_ms_max
        proxy = problem.settings["objectives"]["proxy"]
        if cap is None or not proxy:
            raise ValueError("search.bounds.latency_ms_max: speedlimit needs a latency bound and a proxy")
        specs = problem.initial_specs()
        if len(specs) < 4:
            raise ValueError(
                "sample.n: speedlimit fits its narrowing predictor on the profile stage's "
                f"measurements; it needs at least 4, got {len(specs)}"
            )
        kinds = KINDS if cfg.predictor == "auto" else (cfg.predictor,)
        narrowing = fit(
            specs, problem.initial, problem.seq_len, kinds=kinds, targets=("latency_ms",), seed=problem.seed
        )

        def predict(batch: Sequence[ArchSpec]) -> np.ndarray:
            return narrowing.predict(list(batch))["latency_ms"].to_numpy()

        numbers: dict[str, dict[str, Any]] = {}

        def measure(spec: ArchSpec) -> dict[str, Any]:
            numbers[spec.arch_id] = problem.hardware([spec])[0]
            return numbers[spec.arch_id]

        found = speedlimit_search(problem.space, predict, cap, measure, proxy=proxy, config=cfg)
        archive = found.archive.rename(columns={"predicted_ms": "narrowing_latency_ms"})
        archive = archive.drop(columns=["latency_ms", "feasible", "score", "decoder_params", "flops"])
        archive["in_bounds"] = archive["status"] != "pruned"
        scores = problem.score([ArchSpec.from_json(s) for s in archive["spec"]]).drop(columns="arch_id")
        archive = pd.concat([archive, scores], axis=1)
        bounds = problem.bounds
        archive["in_bounds"] &= np.array([bounds.params_ok(r) for r in archive.to_dict("records")], dtype=bool)
        hw = pd.DataFrame([numbers.get(a, {}) for a in archive["arch_id"]], index=archive.index)
        archive = archive.join(hw.drop(columns=[c for c in hw.columns if c in archive.columns]))
        stats = {k: v for k, v in found.stats.items() if k != "config"}
        stats["narrowing_predictor"] = narrowing.summary()
        return SearchResult(archive, archive.iloc[0:0], problem.objectives, stats)


METHODS.add("speedlimit", SpeedLimit())

__all__ = ["SpeedLimit", "SpeedLimitConfig", "int8_latency", "int8_measure_fn", "measure_table", "speedlimit_search"]
