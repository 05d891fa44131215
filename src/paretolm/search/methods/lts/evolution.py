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
   child. Accepted children get their proxies scored, then the generation's hardware numbers in
   one batch (``hardware``: measured on the target through the cache, or predicted under
   ``search.measure: verify``); a latency above ``bounds.latency_ms_max`` marks the candidate
   infeasible (it stays in the archive, never on the frontier).
4. **Frontier**: the non-dominated feasible candidates of the archive under the switched-on
   objectives (maximise the proxy, minimise ``latency_ms``, minimise ``peak_memory_mb``).

**Determinism.** Every random choice comes from one ``random.Random(seed)`` and selection is a
deterministic function of the objective values (stable tie-breaks by archive order). The only
other input is the hardware numbers; measurements come from the measurement cache, so a rerun
with the same config on the same machine reuses the first run's numbers and reproduces the same
archive and frontier exactly. (Deleting the cache, or another machine, gives fresh measurements
and possibly a different selection.)
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from paretolm.core import pareto
from paretolm.core.arch import ArchSpec
from paretolm.core.spaces import Genome, SearchSpace

log = logging.getLogger(__name__)

Hardware = Callable[[Sequence[ArchSpec]], list[dict[str, Any]]]
Score = Callable[[Sequence[ArchSpec]], pd.DataFrame]


@dataclass(frozen=True)
class SearchConfig:
    """LTS's settings: ``search.lts`` with the shared ``seed``, ``objectives`` and ``bounds`` of
    the search section. The schema owns the defaults (LTS's published settings)."""

    iterations: int
    population: int
    parents: int
    mutations: int
    mutation_prob: float
    crossovers: int
    max_attempts: int
    seed: int
    proxy: str | None
    latency: bool
    memory: bool
    params_column: str
    params_min: float | None
    params_max: float | None
    latency_ms_max: float | None

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> SearchConfig:
        """From the validated ``search`` config section (the schema fills every default)."""
        obj, bounds = section["objectives"], section["bounds"]
        own = {k: v for k, v in section["lts"].items() if k in cls.__dataclass_fields__}
        cfg = cls(
            **own,
            seed=section["seed"],
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
            raise ValueError(f"search.lts.parents: {self.parents} > population={self.population}")
        if not 0 < self.mutation_prob <= 1:
            raise ValueError(f"search.lts.mutation_prob: must be in (0, 1], got {self.mutation_prob}")
        if not self.objectives():
            raise ValueError("search.objectives: switch on at least one objective")
        for name in ("iterations", "mutations", "crossovers"):
            if getattr(self, name) < 0:
                raise ValueError(f"search.lts.{name}: must be >= 0")

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
    """The search loop. ``hardware`` returns the hardware numbers of a batch of specs (one dict
    each); ``score`` returns a proxy table (``arch_id`` + proxy columns) for specs; ``initial``
    are the profiled architectures the first population starts from."""

    def __init__(
        self, space: SearchSpace, cfg: SearchConfig, hardware: Hardware, score: Score, initial: Sequence[ArchSpec] = ()
    ):
        self.space = space
        self.cfg = cfg
        self.hardware = hardware
        self.score = score
        self.initial = list(initial)
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

    def _evaluate(self, cands: Sequence[Candidate]) -> None:
        """The hardware numbers of a batch of admitted candidates, in order; they join the archive."""
        lat_cap = self.cfg.latency_ms_max
        for cand, numbers in zip(cands, self.hardware([c.spec for c in cands]), strict=True):
            cand.values.update({k: v for k, v in numbers.items() if k != "arch_id"})
            cand.values["feasible"] = lat_cap is None or float(cand.values["latency_ms"]) <= lat_cap
            self.archive[cand.spec.arch_id] = cand

    # -- the loop ---------------------------------------------------------------------------
    def _initial_population(self) -> None:
        first: list[Candidate] = []
        seen: set[str] = set()
        for spec in self.initial:
            if len(first) >= self.cfg.population:
                break
            if spec.arch_id in seen:
                continue
            values = self._proxy_row(spec)
            if not self._in_bounds(values):
                continue
            seen.add(spec.arch_id)
            first.append(Candidate(spec, self.space.encode(spec), 0, "sample", (), values))
        tries = 0
        while len(first) < self.cfg.population:
            tries += 1
            if tries > self.cfg.max_attempts * self.cfg.population:
                raise ValueError(
                    f"search.lts.population: could not find {self.cfg.population} distinct architectures within "
                    f"the bounds in space {self.space.name!r}"
                )
            cand = self._admit(self.space.sample_genome(self.rng), seen)
            if cand is None:
                continue
            cand.iteration, cand.origin = 0, "random"
            seen.add(cand.spec.arch_id)
            first.append(cand)
        self._evaluate(first)

    def _breed(self, parents: list[Candidate], kind: str, n: int, iteration: int, taken: set[str]) -> list[Candidate]:
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
            self._evaluate(children)
            log.debug(
                "iteration %d: %d parents, %d new candidates, archive %d (%.1f s)",
                it,
                len(parents),
                len(children),
                len(self.archive),
                time.perf_counter() - t0,
            )
        return self.archive_table(), self.frontier()

    # -- tables ----------------------------------------------------------------------------
    def archive_table(self) -> pd.DataFrame:
        rows = []
        for c in self.archive.values():
            rows.append(
                {
                    "arch_id": c.spec.arch_id,
                    "spec": c.spec.to_json(),
                    "iteration": c.iteration,
                    "origin": c.origin,
                    "parents": list(c.parents),
                    **c.values,
                }
            )
        df = pd.DataFrame(rows)
        if len(df):
            df["feasible"] = df["feasible"].astype(bool)
        return df

    def frontier(self) -> pd.DataFrame:
        """The non-dominated feasible candidates by the numbers the search saw."""
        table = self.archive_table()
        feasible = table[table["feasible"]].reset_index(drop=True)
        front = pareto.pareto_front(feasible, self.cfg.objectives())
        return front.reset_index(drop=True)
