"""LTS's evolutionary Pareto search (Javaheripi et al., 2022), hardware in the loop.

One run works on one search space and one hardware target:

1. **Initial population** (iteration 0): the first ``population`` profiled samples (already
   measured by the profile stage), topped up with fresh random draws if there are fewer.
2. **Each iteration** picks ``parents`` candidates from everything evaluated so far by
   non-dominated rank, ties in the last admitted front broken by crowding distance (NSGA-II),
   so the current frontier is always kept; then breeds ``mutations`` children (each gene
   resampled with probability ``mutation_prob``) and ``crossovers`` children (each gene from one
   of two parents). With the paper's settings (100 = 20 parents + 40 + 40) the next population is
   the parents plus their children.
3. **Cheap checks first.** A child is rejected before any measurement when it is invalid for
   the space, outside the parameter bounds (computed analytically) or a duplicate of a candidate
   already evaluated or bred in this iteration; up to ``max_attempts`` draws are made per wanted
   child. Accepted children get their proxies scored and are measured on the target through the
   cache; a latency above ``bounds.latency_ms_max`` marks the candidate infeasible (it stays in
   the archive, never on the frontier).
4. **Frontier**: the non-dominated feasible candidates of the archive under the switched-on
   objectives (maximise the proxy, minimise ``latency_ms``, minimise ``peak_memory_mb``).

**Determinism.** Every random choice comes from one ``random.Random(seed)`` and selection is a
deterministic function of the objective values (stable tie-breaks by archive order). The only
other input is the measurements, which vary from run to run; they come from the measurement
cache, so a rerun with the same config on the same machine reuses the first run's numbers and
reproduces the same archive and frontier exactly. (Deleting the cache, or another machine, gives
fresh measurements and possibly a different selection.)
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ... import pareto
from ...arch import ArchSpec
from ...spaces import Genome, SearchSpace

log = logging.getLogger(__name__)

Measure = Callable[[ArchSpec], Mapping[str, Any]]
Score = Callable[[Sequence[ArchSpec]], pd.DataFrame]


@dataclass(frozen=True)
class SearchConfig:
    """The search section of the config; defaults are LTS's published settings."""

    iterations: int = 30
    population: int = 100
    parents: int = 20
    mutations: int = 40
    mutation_prob: float = 0.3
    crossovers: int = 40
    seed: int = 0
    proxy: str | None = "decoder_params"
    latency: bool = True
    memory: bool = True
    params_column: str = "decoder_params"
    params_min: float | None = None
    params_max: float | None = None
    latency_ms_max: float | None = None
    max_attempts: int = 20

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> SearchConfig:
        """From the validated ``search`` config section (the schema fills every default)."""
        obj, bounds = section["objectives"], section["bounds"]
        flat = {k: v for k, v in section.items() if k in cls.__dataclass_fields__}
        cfg = cls(
            **flat,
            proxy=obj["proxy"],
            latency=bool(obj["latency"]),
            memory=bool(obj["memory"]),
            params_column=bounds["params"]["column"],
            params_min=bounds["params"]["min"],
            params_max=bounds["params"]["max"],
            latency_ms_max=bounds["latency_ms_max"],
        )
        cfg.check()
        return cfg

    def check(self) -> None:
        if self.parents > self.population:
            raise ValueError(f"search.parents: {self.parents} > population={self.population}")
        if not 0 < self.mutation_prob <= 1:
            raise ValueError(f"search.mutation_prob: must be in (0, 1], got {self.mutation_prob}")
        if not self.objectives():
            raise ValueError("search.objectives: switch on at least one objective")
        for name in ("iterations", "mutations", "crossovers"):
            if getattr(self, name) < 0:
                raise ValueError(f"search.{name}: must be >= 0")

    def objectives(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.proxy:
            out[self.proxy] = "max"
        if self.latency:
            out["latency_ms"] = "min"
        if self.memory:
            out["peak_memory_mb"] = "min"
        return out


@dataclass
class Candidate:
    spec: ArchSpec
    genome: Genome
    iteration: int
    origin: str  # sample, random, mutation, crossover
    parents: tuple[str, ...] = ()
    values: dict[str, Any] = field(default_factory=dict)


class EvolutionarySearch:
    """The search loop. ``measure`` returns the hardware columns of one spec (through the cache);
    ``score`` returns a proxy table (``arch_id`` + proxy columns) for specs."""

    def __init__(self, space: SearchSpace, cfg: SearchConfig, measure: Measure, score: Score,
                 initial: pd.DataFrame | None = None):
        self.space = space
        self.cfg = cfg
        self.measure = measure
        self.score = score
        self.initial = initial
        self.rng = random.Random(cfg.seed)
        self.archive: dict[str, Candidate] = {}
        self.rejected: dict[str, int] = {"invalid": 0, "bounds": 0, "duplicate": 0, "exhausted": 0}

    # -- cheap checks -----------------------------------------------------------------------
    def _proxy_row(self, spec: ArchSpec) -> dict[str, Any]:
        row = self.score([spec]).iloc[0].to_dict()
        row.pop("arch_id", None)
        return row

    def _in_bounds(self, values: Mapping[str, Any]) -> bool:
        lo, hi = self.cfg.params_min, self.cfg.params_max
        if lo is None and hi is None:
            return True
        n = float(values[self.cfg.params_column])
        return (lo is None or n >= lo) and (hi is None or n <= hi)

    def _admit(self, found: tuple[Genome, ArchSpec] | None, taken: set[str]) -> Candidate | None:
        """Run the cheap checks on a bred child; a Candidate with its proxies, or None."""
        if found is None:
            self.rejected["invalid"] += 1
            return None
        genome, spec = found
        if spec.arch_id in self.archive or spec.arch_id in taken:
            self.rejected["duplicate"] += 1
            return None
        values = self._proxy_row(spec)
        if not self._in_bounds(values):
            self.rejected["bounds"] += 1
            return None
        return Candidate(spec=spec, genome=genome, iteration=-1, origin="", values=values)

    def _evaluate(self, cand: Candidate) -> None:
        measured = dict(self.measure(cand.spec))
        measured.pop("arch_id", None)
        cand.values.update(measured)
        lat_cap = self.cfg.latency_ms_max
        cand.values["feasible"] = lat_cap is None or float(cand.values["latency_ms"]) <= lat_cap
        self.archive[cand.spec.arch_id] = cand

    # -- the loop ---------------------------------------------------------------------------
    def _initial_population(self) -> None:
        taken: set[str] = set()
        if self.initial is not None and len(self.initial):
            for row in self.initial.to_dict("records"):
                if len(self.archive) >= self.cfg.population:
                    break
                spec = ArchSpec.from_json(row["spec"])
                if spec.arch_id in self.archive or not self._in_bounds(row):
                    continue
                values = {k: v for k, v in row.items() if k not in ("arch_id", "spec")}
                lat_cap = self.cfg.latency_ms_max
                values["feasible"] = lat_cap is None or float(values["latency_ms"]) <= lat_cap
                self.archive[spec.arch_id] = Candidate(spec, self.space.encode(spec), 0, "sample", (), values)
        tries = 0
        while len(self.archive) < self.cfg.population:
            tries += 1
            if tries > self.cfg.max_attempts * self.cfg.population:
                raise ValueError(
                    f"search.population: could not find {self.cfg.population} distinct architectures within "
                    f"the bounds in space {self.space.name!r}"
                )
            cand = self._admit(self.space.sample_genome(self.rng), taken)
            if cand is None:
                continue
            cand.iteration, cand.origin = 0, "random"
            self._evaluate(cand)

    def _breed(self, parents: list[Candidate], kind: str, n: int, iteration: int,
               taken: set[str]) -> list[Candidate]:
        children = []
        for _ in range(n):
            for _attempt in range(self.cfg.max_attempts):
                if kind == "mutation":
                    a = self.rng.choice(parents)
                    found = self.space.mutate(a.genome, self.cfg.mutation_prob, self.rng)
                    ids: tuple[str, ...] = (a.spec.arch_id,)
                else:
                    a, b = self.rng.sample(parents, 2) if len(parents) > 1 else (parents[0], parents[0])
                    found = self.space.crossover(a.genome, b.genome, self.rng)
                    ids = (a.spec.arch_id, b.spec.arch_id)
                cand = self._admit(found, taken)
                if cand is not None:
                    cand.iteration, cand.origin, cand.parents = iteration, kind, ids
                    taken.add(cand.spec.arch_id)
                    children.append(cand)
                    break
            else:
                self.rejected["exhausted"] += 1
        return children

    def select_parents(self) -> list[Candidate]:
        table = self.archive_table()
        feasible = table[table["feasible"]]
        if feasible.empty:
            feasible = table  # nothing meets the latency cap yet: breed from the closest
        chosen = pareto.select(feasible, self.cfg.objectives(), self.cfg.parents)
        return [self.archive[a] for a in chosen["arch_id"]]

    def run(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Run every iteration; returns (archive, frontier)."""
        t0 = time.perf_counter()
        self._initial_population()
        for it in range(1, self.cfg.iterations + 1):
            parents = self.select_parents()
            taken: set[str] = set()
            children = self._breed(parents, "mutation", self.cfg.mutations, it, taken)
            children += self._breed(parents, "crossover", self.cfg.crossovers, it, taken)
            for cand in children:
                self._evaluate(cand)
            front = self.frontier()
            log.info("iteration %d: %d parents, %d new candidates, archive %d, frontier %d (%.1f s)",
                     it, len(parents), len(children), len(self.archive), len(front), time.perf_counter() - t0)
        return self.archive_table(), self.frontier()

    # -- tables ----------------------------------------------------------------------------
    def archive_table(self) -> pd.DataFrame:
        rows = []
        for c in self.archive.values():
            rows.append({"arch_id": c.spec.arch_id, "spec": c.spec.to_json(), "iteration": c.iteration,
                         "origin": c.origin, "parents": list(c.parents), **c.values})
        df = pd.DataFrame(rows)
        if len(df):
            df["feasible"] = df["feasible"].astype(bool)
        return df

    def frontier(self) -> pd.DataFrame:
        table = self.archive_table()
        feasible = table[table["feasible"]].reset_index(drop=True)
        front = pareto.pareto_front(feasible, self.cfg.objectives())
        return front.reset_index(drop=True)
