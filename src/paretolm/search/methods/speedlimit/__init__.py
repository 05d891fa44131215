"""SpeedLimit's method: a predictor-narrowed space, then evolution under an upper latency bound."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from paretolm.core.arch import ArchSpec
from paretolm.search.methods import METHODS, SearchProblem, SearchResult
from paretolm.search.methods.speedlimit.search import SpeedLimitConfig, int8_latency, int8_measure_fn, measure_table, speedlimit_search


class SpeedLimit:
    """``search.method: speedlimit`` (settings in ``search.speedlimit``): a latency predictor
    fitted on the profile stage's measurements of this target prunes every candidate predicted
    above ``search.bounds.latency_ms_max`` by more than ``margin``; the others get hardware
    numbers, and evolution maximises ``search.objectives.proxy`` among those under the bound.
    SpeedLimit measures int8 models: run it on a ``cpu_int8`` target (or any other)."""

    def run(self, problem: SearchProblem) -> SearchResult:
        from paretolm.hardware.predictors.committee import KINDS, fit

        block = problem.block
        cap = problem.bounds.latency_ms_max
        proxy = problem.settings["objectives"]["proxy"]
        if cap is None or not proxy:
            raise ValueError("search.bounds.latency_ms_max: speedlimit needs a latency bound and a proxy")
        specs = problem.initial_specs()
        if len(specs) < 4:
            raise ValueError("sample.n: speedlimit fits its narrowing predictor on the profile stage's "
                             f"measurements; it needs at least 4, got {len(specs)}")
        kinds = KINDS if block["predictor"] == "auto" else (block["predictor"],)
        narrowing = fit(specs, problem.initial, problem.seq_len, kinds=kinds, targets=("latency_ms",),
                        seed=problem.seed)

        def predict(batch: Sequence[ArchSpec]) -> np.ndarray:
            return narrowing.predict(list(batch))["latency_ms"].to_numpy()

        numbers: dict[str, dict[str, Any]] = {}

        def measure(spec: ArchSpec) -> dict[str, Any]:
            numbers[spec.arch_id] = problem.hardware([spec])[0]
            return numbers[spec.arch_id]

        fields = {f.name for f in dataclasses.fields(SpeedLimitConfig)} - {"seq_len", "seed"}
        cfg = SpeedLimitConfig(**{k: block[k] for k in fields}, seq_len=int(problem.scorer.seq_len),
                               seed=problem.seed)
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
