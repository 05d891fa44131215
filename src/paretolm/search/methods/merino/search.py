"""MeRino's entropy-driven design: an evolutionary search maximising a proxy under budgets.

MeRino (Zhao et al., AAAI 2025, arXiv:2403.07921) designs a block-wise decoder by maximising its
penalised subspace entropy (the ``merino_entropy`` proxy) subject to a FLOPs and/or parameter
budget. The maximisation is a mathematical program solved by the evolutionary algorithm MeRino
takes over from Zen-NAS / MAE-DET (its Algorithm 1), which we follow:

1. Start a population ``P`` from an initial structure (here: ``init_samples`` random draws from
   the space that meet the budget; if none does, the space's smallest architecture, MeRino's
   ``F_0``).
2. For ``t = 1..T`` (``iterations``): pick a parent from ``P`` (uniformly at random, as in the
   paper; ``parent_selection="tournament"`` picks the best of ``tournament_size`` random members
   instead), optionally cross it with a second parent (off by default: the paper only mutates),
   and mutate it (each genome entry resampled with probability ``mutation_prob``, default one
   entry in expectation; a child identical to its parent is redrawn). A child over the budget is
   recorded as infeasible and dropped ("do nothing"); otherwise its proxy is computed and it joins
   ``P``; when ``|P|`` exceeds ``population`` the member with the lowest score leaves.
3. Return the highest-scoring feasible architecture ever seen.

The paper's search (N = 512, T in the tens of thousands) runs on a CPU in minutes; here scoring is
analytic (exact counts from ``paretolm.core.counting`` and the closed-form entropy), so thousands of
candidates a second. A candidate already evaluated is not scored again (it is counted in
``duplicates`` and does not enter the population twice, which keeps the population diverse).

**Determinism.** Every random choice comes from one ``random.Random(seed)``; ties in eviction and
in the final choice go to the earlier candidate. The same arguments give the same archive.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pandas as pd

from paretolm.core.arch import ArchSpec
from paretolm.core.counting import DEFAULT_SEQ_LEN, count
from paretolm.core.settings import check, setting
from paretolm.core.spaces import Genome, SearchSpace
from paretolm.proxies import get
from paretolm.search.methods import MethodSettings

ProxyFn = Callable[..., float]
MAX = 10_000_000


@dataclass(frozen=True)
class MerinoConfig(MethodSettings):
    """MeRino's evolution maximising a proxy under FLOPs / parameter budgets (a block-wise space);
    defaults: MeRino's N = 512, T scaled to seconds."""

    proxy: str = setting("merino_entropy", doc="The analytic proxy the evolution maximises.")
    population: int = setting(512, minimum=1, maximum=MAX)
    iterations: int = setting(10_000, minimum=1, maximum=MAX)
    init_samples: int = setting(64, minimum=0, maximum=MAX)
    parent_selection: Literal["random", "tournament"] = setting(
        "random", doc="random (MeRino, Zen-NAS) or the best of tournament_size random members."
    )
    tournament_size: int = setting(8, minimum=1, maximum=MAX)
    mutation_prob: float | None = setting(
        None, exclusive_minimum=0, maximum=1, doc="Per genome entry; null: one entry in expectation."
    )
    crossover_prob: float = setting(0.0, minimum=0, maximum=1)
    max_flops: float | None = setting(None, exclusive_minimum=0, maximum=1.0e17)
    max_params: float | None = setting(None, exclusive_minimum=0, maximum=1.0e13)
    param_field: Literal["total_params", "decoder_params"] = setting("total_params")
    top: int = setting(32, minimum=1, maximum=MAX, doc="Highest-scoring feasible candidates given hardware numbers.")
    seq_len: int = setting(DEFAULT_SEQ_LEN, minimum=1, config=False)  # proxies.seq_len
    seed: int = setting(0, minimum=0, config=False)  # search.seed

    def __post_init__(self) -> None:
        check(self, "search.merino")
        for name in ("seq_len", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (name == "seq_len"):
                raise ValueError(
                    f"{name}: must be a {'positive' if name == 'seq_len' else 'non-negative'} integer, got {value!r}"
                )


@dataclass
class SearchResult:
    """The archive (one row per distinct candidate evaluated), the best spec and run statistics."""

    archive: pd.DataFrame
    best: ArchSpec | None
    best_score: float
    stats: dict[str, Any] = field(default_factory=dict)


def resolve_proxy(proxy: str | ProxyFn) -> tuple[str, ProxyFn]:
    """A registered proxy by name (analytic ones only) or a callable ``fn(spec, seq_len=...)``."""
    if callable(proxy):
        return getattr(proxy, "__name__", "custom"), proxy
    p = get(proxy)
    if p.needs_data:
        raise ValueError(f"proxy: {proxy!r} needs data; the MeRino search takes analytic proxies only")
    return p.name, p.fn


class _Evaluator:
    """Counts, budget check and score of a spec, each computed once per arch_id."""

    def __init__(self, cfg: MerinoConfig, proxy_fn: ProxyFn):
        self.cfg = cfg
        self.proxy_fn = proxy_fn
        self.rows: list[dict[str, Any]] = []
        self.seen: dict[str, int] = {}

    def __call__(self, spec: ArchSpec, iteration: int, origin: str, parents: tuple[str, ...]) -> dict | None:
        """The new archive row, or None for an architecture already evaluated."""
        aid = spec.arch_id
        if aid in self.seen:
            return None
        c = count(spec, self.cfg.seq_len)
        params = getattr(c, self.cfg.param_field)
        reasons = []
        if self.cfg.max_flops is not None and c.flops > self.cfg.max_flops:
            reasons.append(f"flops {c.flops} > {self.cfg.max_flops:g}")
        if self.cfg.max_params is not None and params > self.cfg.max_params:
            reasons.append(f"{self.cfg.param_field} {params} > {self.cfg.max_params:g}")
        feasible = not reasons
        score = float(self.proxy_fn(spec, seq_len=self.cfg.seq_len)) if feasible else math.nan
        row = {
            "arch_id": aid,
            "iteration": iteration,
            "origin": origin,
            "parents": ",".join(parents),
            "score": score,
            "flops": c.flops,
            "params": params,
            "decoder_params": c.decoder_params,
            "total_params": c.total_params,
            "feasible": feasible,
            "infeasible_reason": "; ".join(reasons),
            "spec": spec.to_json(),
        }
        self.seen[aid] = len(self.rows)
        self.rows.append(row)
        return row


def _smallest_genome(space: SearchSpace) -> Genome:
    return {key: min(gene.choices) for key, gene in space.keys()}


def merino_search(
    space: SearchSpace,
    proxy: str | ProxyFn = "merino_entropy",
    config: MerinoConfig | None = None,
    **overrides: Any,
) -> SearchResult:
    """Run MeRino's evolutionary search on ``space`` (see the module docstring).

    ``overrides`` replace fields of ``config`` (e.g. ``iterations=2000, max_flops=5e9``).
    """
    cfg = MerinoConfig(**{**asdict(config or MerinoConfig()), **overrides})
    if cfg.max_flops is None and cfg.max_params is None:
        raise ValueError("max_flops: give a FLOPs and/or a parameter budget (max_params)")
    proxy_name, proxy_fn = resolve_proxy(proxy)
    rng = random.Random(cfg.seed)
    n_keys = sum(1 for _ in space.keys())
    p_mut = cfg.mutation_prob if cfg.mutation_prob is not None else 1.0 / n_keys
    evaluate = _Evaluator(cfg, proxy_fn)
    # population members: (score, archive index, genome)
    population: list[tuple[float, int, Genome]] = []
    duplicates = 0
    t0 = time.perf_counter()

    def admit(genome: Genome, spec: ArchSpec, iteration: int, origin: str, parents: tuple[str, ...]) -> None:
        nonlocal duplicates
        row = evaluate(spec, iteration, origin, parents)
        if row is None:
            duplicates += 1
            return
        if not row["feasible"]:
            return
        # kept sorted by (score, archive index): the lowest score leaves, among equal scores the
        # oldest; archive indices are unique, so genomes are never compared
        bisect.insort(population, (row["score"], evaluate.seen[row["arch_id"]], space.encode(spec)))
        if len(population) > cfg.population:
            population.pop(0)

    for _ in range(cfg.init_samples):
        genome, spec = space.sample_genome(rng)
        admit(genome, spec, 0, "init", ())
    if not population:
        genome = _smallest_genome(space)
        try:
            spec = space.decode(genome)
        except ValueError as e:
            raise ValueError(f"space: its smallest architecture is invalid ({e})") from e
        admit(genome, spec, 0, "smallest", ())
        if not population:
            raise ValueError(
                f"max_flops/max_params: even the smallest architecture of space {space.name!r} "
                f"exceeds the budget (flops={count(spec, cfg.seq_len).flops}, "
                f"{cfg.param_field}={getattr(count(spec, cfg.seq_len), cfg.param_field)})"
            )

    def pick() -> tuple[float, int, Genome]:
        if cfg.parent_selection == "random":
            return population[rng.randrange(len(population))]
        contenders = [population[rng.randrange(len(population))] for _ in range(cfg.tournament_size)]
        return max(contenders, key=lambda m: (m[0], -m[1]))

    for it in range(1, cfg.iterations + 1):
        parent = pick()
        parent_ids = (evaluate.rows[parent[1]]["arch_id"],)
        base = parent[2]
        origin = "mutation"
        if cfg.crossover_prob and len(population) > 1 and rng.random() < cfg.crossover_prob:
            other = pick()
            crossed = space.crossover(base, other[2], rng)
            if crossed is not None:
                base = crossed[0]
                parent_ids += (evaluate.rows[other[1]]["arch_id"],)
                origin = "crossover+mutation"
        child = None
        for _ in range(10):
            child = space.mutate(base, p_mut, rng)
            if child is not None and child[1].arch_id != parent_ids[0]:
                break
        if child is None:
            continue
        admit(child[0], child[1], it, origin, parent_ids)

    seconds = time.perf_counter() - t0
    archive = pd.DataFrame(evaluate.rows)
    feasible = archive[archive["feasible"]]
    best_idx = int(feasible["score"].idxmax())  # first maximum: earliest candidate wins ties
    best = ArchSpec.from_json(archive.at[best_idx, "spec"])
    stats = {
        "proxy": proxy_name,
        "candidates": len(archive),
        "feasible": int(archive["feasible"].sum()),
        "duplicates": duplicates,
        "seconds": seconds,
        "candidates_per_second": (len(archive) + duplicates) / seconds if seconds > 0 else math.inf,
        "config": asdict(cfg),
    }
    return SearchResult(archive=archive, best=best, best_score=float(archive.at[best_idx, "score"]), stats=stats)


def random_search(
    space: SearchSpace,
    n: int,
    proxy: str | ProxyFn = "merino_entropy",
    **budget: Any,
) -> SearchResult:
    """The baseline: ``n`` uniform draws scored under the same budget (MeRino's comparison point)."""
    cfg = MerinoConfig(**{**asdict(MerinoConfig()), **budget})
    if n < 1:
        raise ValueError(f"n: must be a positive integer, got {n!r}")
    proxy_name, proxy_fn = resolve_proxy(proxy)
    rng = random.Random(cfg.seed)
    evaluate = _Evaluator(cfg, proxy_fn)
    t0 = time.perf_counter()
    for _ in range(n):
        _, spec = space.sample_genome(rng)
        evaluate(spec, 0, "random", ())
    archive = pd.DataFrame(evaluate.rows)
    feasible = archive[archive["feasible"]]
    if feasible.empty:
        return SearchResult(archive, None, math.nan, {"proxy": proxy_name, "candidates": len(archive)})
    best_idx = int(feasible["score"].idxmax())
    return SearchResult(
        archive=archive,
        best=ArchSpec.from_json(archive.at[best_idx, "spec"]),
        best_score=float(archive.at[best_idx, "score"]),
        stats={"proxy": proxy_name, "candidates": len(archive), "seconds": time.perf_counter() - t0},
    )
