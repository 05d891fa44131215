"""NSGA-II (and NSGA-III, MOEA/D) from pymoo over the same genome as every other method.

``search.method: nsga2`` (settings in ``search.nsga2``): the genome is the space's, one integer
variable per genome entry (the index of its choice), so pymoo's operators (simulated binary
crossover and polynomial mutation, rounded) breed in the same space as LTS. A repair operator
applies the space's own repair (head counts that divide the width, inner widths over the
minimum ratio) before evaluation, so individuals are valid architectures; one the space still
rejects is infeasible. The objectives are the configured ones (a maximised proxy is negated);
the parameter bounds and the latency bound are inequality constraints, handled by pymoo's
constraint domination (NSGA-II, NSGA-III). MOEA/D in pymoo takes no constraints, so there the
violation is added to every objective as a penalty; it runs as ``ParallelMOEAD`` so that each
generation is one batch of evaluations.

The first population is the profile stage's samples within bounds, topped up with random
architectures from the space; each generation's new individuals are evaluated as one batch
(measured, or predicted under ``search.measure: verify``). Duplicates of an architecture already
evaluated cost nothing; the archive holds each architecture once, with the generation that first
proposed it (``iteration``) and origin ``offspring`` (pymoo does not report parents).
Deterministic: pymoo is seeded with ``search.seed``, and so is the repair.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from paretolm.core.arch import ArchSpec
from paretolm.core.settings import check, setting
from paretolm.search.methods import METHODS, Method, MethodSettings, SearchProblem, SearchResult

PENALTY = 1e6  # objective penalty per unit of constraint violation (MOEA/D)
MAX = 10_000_000


@dataclass(frozen=True)
class Nsga2Settings(MethodSettings):
    """A pymoo algorithm over the same genome, bounds as constraints."""

    algorithm: Literal["nsga2", "nsga3", "moead"] = setting("nsga2")
    population: int = setting(100, minimum=2, maximum=MAX)
    generations: int = setting(30, minimum=0, maximum=MAX)
    crossover_prob: float = setting(0.9, minimum=0, maximum=1)
    crossover_eta: float = setting(15, exclusive_minimum=0, maximum=10000)
    mutation_eta: float = setting(20, exclusive_minimum=0, maximum=10000)
    partitions: int = setting(
        12, minimum=1, maximum=MAX, doc="Das-Dennis partitions of the reference directions (nsga3, moead)."
    )

    def __post_init__(self) -> None:
        check(self, "search.nsga2")


class PymooSearch(Method):
    settings = Nsga2Settings
    test_settings = {"population": 10, "generations": 3}

    def run(self, problem: SearchProblem) -> SearchResult:
        from pymoo.core.problem import Problem
        from pymoo.core.repair import Repair
        from pymoo.optimize import minimize

        block = problem.block
        space = problem.space
        keys = list(space.keys())
        choices = [gene.choices for _, gene in keys]
        objectives = problem.objectives
        bounds = problem.bounds
        rng = random.Random(problem.seed)
        algorithm_name = block["algorithm"]
        constrained = algorithm_name != "moead"
        n_constr = 3
        rows: dict[str, dict[str, Any]] = {}
        generation = [0]

        def genome(x: np.ndarray) -> dict[str, Any]:
            return {key: choices[i][int(v)] for i, ((key, _), v) in enumerate(zip(keys, x, strict=True))}

        def indices(g: dict[str, Any]) -> list[int]:
            return [choices[i].index(g[key]) for i, (key, _) in enumerate(keys)]

        class SpaceRepair(Repair):
            def _do(self, _problem: Any, X: np.ndarray, **kwargs: Any) -> np.ndarray:
                out = np.asarray(X).round().astype(int)
                for r in range(len(out)):
                    out[r] = indices(space.codec.repair(space, genome(out[r]), rng))
                return out

        def decode(x: np.ndarray) -> ArchSpec | None:
            try:
                spec = space.decode(genome(x))
            except ValueError:
                return None
            return None if space.violation(spec) else spec

        def evaluate(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            specs = [decode(x) for x in X]
            valid = list({s.arch_id: s for s in specs if s is not None}.values())
            new = [s for s in valid if s.arch_id not in rows]
            if new:
                scores = problem.score(new).to_dict("records")
                numbers = problem.hardware(new)
                for spec, score, hw in zip(new, scores, numbers, strict=True):
                    first = "random" if generation[0] == 0 else "offspring"
                    origin = "sample" if spec.arch_id in initial_ids else first
                    rows[spec.arch_id] = {
                        **score,
                        "spec": spec.to_json(),
                        "iteration": generation[0],
                        "origin": origin,
                        "in_bounds": bounds.params_ok(score),
                        **{k: v for k, v in hw.items() if k not in score},
                    }
            generation[0] += 1
            F = np.full((len(X), len(objectives)), PENALTY)
            G = np.full((len(X), n_constr), PENALTY)
            for r, spec in enumerate(specs):
                if spec is None:
                    continue
                row = rows[spec.arch_id]
                F[r] = [-float(row[c]) if sense == "max" else float(row[c]) for c, sense in objectives.items()]
                G[r] = constraints(row)
            if not constrained:
                F = F + PENALTY * np.maximum(G, 0).sum(axis=1, keepdims=True)
            return F, G

        def constraints(row: dict[str, Any]) -> list[float]:
            g = [0.0, 0.0, 0.0]
            n = float(row[bounds.params_column]) if bounds.params_column in row else 0.0
            if bounds.params_min is not None:
                g[0] = (bounds.params_min - n) / max(abs(bounds.params_min), 1.0)
            if bounds.params_max is not None:
                g[1] = (n - bounds.params_max) / max(abs(bounds.params_max), 1.0)
            if bounds.latency_ms_max is not None:
                g[2] = (float(row["latency_ms"]) - bounds.latency_ms_max) / bounds.latency_ms_max
            return g

        class Genome(Problem):
            def __init__(self) -> None:
                super().__init__(
                    n_var=len(keys),
                    n_obj=len(objectives),
                    n_ieq_constr=n_constr if constrained else 0,
                    xl=0,
                    xu=np.array([len(c) - 1 for c in choices]),
                    vtype=int,
                )

            def _evaluate(self, X: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
                F, G = evaluate(np.asarray(X).round().astype(int))
                out["F"] = F
                if constrained:
                    out["G"] = G

        ref_dirs = None
        size = int(block["population"])
        if algorithm_name != "nsga2":
            from pymoo.util.ref_dirs import get_reference_directions

            ref_dirs = get_reference_directions("das-dennis", len(objectives), n_partitions=int(block["partitions"]))
            # NSGA-III wants at least one individual per direction; MOEA/D exactly one
            size = max(size, len(ref_dirs)) if algorithm_name == "nsga3" else len(ref_dirs)
        initial_ids: set[str] = set()
        start = self._first_population(problem, size, rng, indices, initial_ids)
        algorithm = self._algorithm(block, ref_dirs, start, SpaceRepair())
        res = minimize(Genome(), algorithm, ("n_gen", int(block["generations"]) + 1), seed=problem.seed, verbose=False)
        archive = pd.DataFrame(list(rows.values()))  # each row starts with its arch_id (from the scores)
        stats = {
            "algorithm": algorithm_name,
            "evaluations": int(res.algorithm.evaluator.n_eval),
            "generations": int(res.algorithm.n_gen),
        }
        return SearchResult(archive, archive.iloc[0:0], objectives, stats)

    @staticmethod
    def _first_population(
        problem: SearchProblem, size: int, rng: random.Random, indices: Any, initial_ids: set[str]
    ) -> np.ndarray:
        bounds = problem.bounds
        specs = problem.initial_specs()
        scores = problem.score(specs).to_dict("records") if specs else []
        X: list[list[int]] = []
        seen: set[str] = set()
        for spec, score in zip(specs, scores, strict=True):
            if len(X) < size and spec.arch_id not in seen and bounds.params_ok(score):
                seen.add(spec.arch_id)
                initial_ids.add(spec.arch_id)
                X.append(indices(problem.space.encode(spec)))
        for _ in range(50 * size):
            if len(X) >= size:
                break
            g, spec = problem.space.sample_genome(rng)
            if spec.arch_id not in seen:
                seen.add(spec.arch_id)
                X.append(indices(g))
        return np.array(X, dtype=int)

    @staticmethod
    def _algorithm(block: dict[str, Any], ref_dirs: np.ndarray | None, start: np.ndarray, repair: Any) -> Any:
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair

        crossover = SBX(prob=block["crossover_prob"], eta=block["crossover_eta"], vtype=float, repair=RoundingRepair())
        mutation = PM(eta=block["mutation_eta"], vtype=float, repair=RoundingRepair())
        kw = dict(sampling=start, crossover=crossover, mutation=mutation, repair=repair)
        name = block["algorithm"]
        if name == "nsga2":
            from pymoo.algorithms.moo.nsga2 import NSGA2

            return NSGA2(pop_size=len(start), eliminate_duplicates=True, **kw)
        if name == "nsga3":
            from pymoo.algorithms.moo.nsga3 import NSGA3

            return NSGA3(ref_dirs, pop_size=len(start), eliminate_duplicates=True, **kw)
        from pymoo.algorithms.moo.moead import ParallelMOEAD

        return ParallelMOEAD(ref_dirs, **kw)


METHODS.add("nsga2", PymooSearch())

__all__ = ["Nsga2Settings", "PymooSearch"]
