"""SpeedLimit: search under a latency upper bound for int8-quantized Transformers.

SpeedLimit (Chai et al., ES-FoMO @ ICML 2023, arXiv:2209.12127) searches homogeneous BERT
encoders ``(e, h, f)`` for the best accuracy whose *int8* latency stays under a hard cap. Its
procedure, as implemented here:

1. **Narrow the space with a latency predictor.** A candidate whose predicted latency exceeds the
   cap by more than a safety ``margin`` (relative, default 10 %) is discarded without being built
   or measured; predictor error inside the margin is left for the measurement to settle.
2. **Evolve under the upper bound.** Among the candidates that survive narrowing, each is built,
   dynamically quantized (int8 ``nn.Linear``) and *measured*; only those whose measured latency is
   under the cap are feasible. An evolutionary search (parents = the best feasible candidates so
   far by the proxy; children by mutation and crossover of their genomes) maximises the proxy
   among feasible candidates. SpeedLimit scores candidates with a trained supernet; paretolm is
   training-free, so the score is any registered analytic proxy or a callable.
3. **Return** the archive of every candidate drawn (pruned, over the cap, feasible) and the best
   feasible one.

``int8_latency`` measures one spec the way the ``cpu_int8`` hardware target does (same model
preparation through ``paretolm.hardware.profiling``, including its guard of the moving
``quantize_dynamic`` API), with few repeats on one thread so it stays light.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from paretolm.core.arch import ArchSpec
from paretolm.core.counting import count
from paretolm.core.settings import check, setting
from paretolm.core.spaces import Genome, SearchSpace
from paretolm.hardware.predictors.committee import Choice
from paretolm.hardware.predictors.mlp import LatencyPredictor
from paretolm.hardware.profiling import Settings, measure
from paretolm.search.methods import MethodSettings
from paretolm.search.methods.merino.search import SearchResult, resolve_proxy

MAX = 10_000_000

MeasureFn = Callable[[ArchSpec], "float | Mapping[str, Any]"]
Child = tuple[ArchSpec, str, tuple[str, ...]]


# -- measurement -----------------------------------------------------------------------------------
def int8_latency(
    spec: ArchSpec,
    seq_len: int = 128,
    batch: int = 1,
    threads: int = 1,
    warmup: int = 2,
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Median forward latency (ms) of ``spec`` with int8 dynamic quantization of its Linear layers,
    on the CPU, in eval mode under ``torch.inference_mode``, after ``warmup`` passes."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats: need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    s = Settings(
        device="cpu",
        quantize="dynamic_int8",
        threads=threads,
        batch=batch,
        seq_len=seq_len,
        warmup=warmup,
        min_repeats=repeats,
        max_repeats=repeats,
        memory=False,
        seed=seed,
    )
    return measure(spec, s)


def int8_measure_fn(statistic: str = "median", **settings: Any) -> Callable[[ArchSpec], float]:
    """``spec -> ms`` with fixed measurement settings (see ``int8_latency``). ``statistic``:
    ``median`` of the timed passes (as the profile stage reports) or ``min`` (robust on a machine
    that other jobs share: interference only ever adds time)."""
    if statistic not in ("median", "min"):
        raise ValueError(f"statistic: 'median' or 'min', got {statistic!r}")
    key = "latency_ms" if statistic == "median" else "latency_min_ms"

    def fn(spec: ArchSpec) -> float:
        return float(int8_latency(spec, **settings)[key])

    return fn


def measure_table(specs: Sequence[ArchSpec], **settings: Any) -> pd.DataFrame:
    """A profile-shaped table (``arch_id``, ``spec``, ``latency_ms``, ...) of int8 measurements."""
    rows = []
    for spec in specs:
        m = int8_latency(spec, **settings)
        rows.append(
            {
                "arch_id": spec.arch_id,
                "spec": spec.to_json(),
                "latency_ms": m["latency_ms"],
                "latency_min_ms": m["latency_min_ms"],
                "latency_iqr_ms": m["latency_iqr_ms"],
                "repeats": m["repeats"],
                "measure_seconds": m["measure_seconds"],
            }
        )
    return pd.DataFrame(rows)


# -- search ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpeedLimitConfig(MethodSettings):
    """SpeedLimit's predictor-narrowed evolution under search.bounds.latency_ms_max (LTS-like
    defaults scaled to measured candidates on a CPU)."""

    population: int = setting(20, minimum=1, maximum=MAX)
    iterations: int = setting(5, minimum=0, maximum=MAX)
    parents: int = setting(5, minimum=1, maximum=MAX)
    mutations: int = setting(10, minimum=0, maximum=MAX)
    crossovers: int = setting(5, minimum=0, maximum=MAX)
    mutation_prob: float = setting(0.3, exclusive_minimum=0, maximum=1)
    margin: float = setting(
        0.1,
        minimum=0,
        exclusive_maximum=10,
        doc="Relative margin over the bound before a predicted latency prunes a candidate.",
    )
    max_attempts: int = setting(50, minimum=1, maximum=MAX)
    predictor: Choice = setting("auto", doc="The narrowing predictor's kind (auto: lowest out-of-fold error).")
    seq_len: int = setting(128, minimum=1, config=False)  # proxies.seq_len
    seed: int = setting(0, minimum=0, config=False)  # search.seed

    def __post_init__(self) -> None:
        check(self, "search.speedlimit")


def _latency(value: float | Mapping[str, Any]) -> float:
    if isinstance(value, Mapping):
        value = value["latency_ms"]
    value = float(value)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"latency_ms: measure_fn returned {value!r}")
    return value


def speedlimit_search(
    space: SearchSpace,
    predictor: LatencyPredictor | Callable[[Sequence[ArchSpec]], Sequence[float]],
    latency_cap_ms: float,
    measure_fn: MeasureFn,
    proxy: str | Callable[..., float] = "decoder_params",
    config: SpeedLimitConfig | None = None,
    **overrides: Any,
) -> SearchResult:
    """SpeedLimit's search (module docstring). ``predictor`` is a fitted ``LatencyPredictor`` or a
    callable ``specs -> predicted ms``; ``measure_fn(spec)`` returns ms (or a dict with
    ``latency_ms``). The archive has one row per distinct candidate drawn, with its ``status``:
    ``pruned`` (predicted over cap x (1 + margin), never measured), ``over_cap`` (measured over the
    cap) or ``feasible``."""
    cfg = SpeedLimitConfig(**{**asdict(config or SpeedLimitConfig()), **overrides})
    if not (isinstance(latency_cap_ms, (int, float)) and latency_cap_ms > 0):
        raise ValueError(f"latency_cap_ms: must be a positive number, got {latency_cap_ms!r}")
    predict = predictor.predict_specs if isinstance(predictor, LatencyPredictor) else predictor
    proxy_name, proxy_fn = resolve_proxy(proxy)
    rng = random.Random(cfg.seed)
    bound = latency_cap_ms * (1 + cfg.margin)
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    genomes: list[Genome] = []
    t0 = time.perf_counter()
    measure_seconds = 0.0

    def consider(spec: ArchSpec, origin: str, parents: tuple[str, ...], iteration: int) -> bool:
        """Evaluate a new candidate; True if it was measured (it used up a slot)."""
        nonlocal measure_seconds
        if spec.arch_id in seen:
            return False
        predicted = float(predict([spec])[0])
        c = count(spec, cfg.seq_len)
        row = {
            "arch_id": spec.arch_id,
            "iteration": iteration,
            "origin": origin,
            "parents": ",".join(parents),
            "predicted_ms": predicted,
            "latency_ms": math.nan,
            "status": "pruned",
            "feasible": False,
            "score": math.nan,
            "decoder_params": c.decoder_params,
            "flops": c.flops,
            "spec": spec.to_json(),
        }
        seen[spec.arch_id] = len(rows)
        rows.append(row)
        genomes.append(space.encode(spec))
        if predicted > bound:
            return False
        tm = time.perf_counter()
        row["latency_ms"] = _latency(measure_fn(spec))
        measure_seconds += time.perf_counter() - tm
        row["feasible"] = row["latency_ms"] <= latency_cap_ms
        row["status"] = "feasible" if row["feasible"] else "over_cap"
        row["score"] = float(proxy_fn(spec, seq_len=cfg.seq_len))
        return True

    def fill(n: int, iteration: int, make: Callable[[], Child | None]) -> None:
        got = 0
        for _ in range(n * cfg.max_attempts):
            if got >= n:
                break
            made = make()
            if made is not None and consider(*made, iteration=iteration):
                got += 1

    def random_child() -> Child:
        return space.sample_genome(rng)[1], "init", ()

    def breed(kind: str, parents: list[int]) -> Child | None:
        if kind == "mutation":
            p = parents[rng.randrange(len(parents))]
            child = space.mutate(genomes[p], cfg.mutation_prob, rng)
            return None if child is None else (child[1], kind, (rows[p]["arch_id"],))
        a, b = (parents[rng.randrange(len(parents))] for _ in range(2))
        child = space.crossover(genomes[a], genomes[b], rng)
        return None if child is None else (child[1], kind, (rows[a]["arch_id"], rows[b]["arch_id"]))

    fill(cfg.population, 0, random_child)
    for it in range(1, cfg.iterations + 1):
        feasible = [i for i, r in enumerate(rows) if r["feasible"]]
        if not feasible:
            break
        parents = sorted(feasible, key=lambda i: (-rows[i]["score"], i))[: cfg.parents]
        fill(cfg.mutations, it, lambda: breed("mutation", parents))  # noqa: B023 (called at once)
        if len(parents) > 1:
            fill(cfg.crossovers, it, lambda: breed("crossover", parents))  # noqa: B023

    archive = pd.DataFrame(rows)
    status = archive["status"].value_counts().to_dict() if len(archive) else {}
    measured = archive["latency_ms"].notna()
    stats = {
        "proxy": proxy_name,
        "candidates": len(archive),
        "pruned": int(status.get("pruned", 0)),
        "over_cap": int(status.get("over_cap", 0)),
        "feasible": int(status.get("feasible", 0)),
        "measured": int(measured.sum()),
        "measure_seconds": measure_seconds,
        "seconds": time.perf_counter() - t0,
        "latency_cap_ms": float(latency_cap_ms),
        "config": asdict(cfg),
    }
    if not stats["feasible"]:
        return SearchResult(archive, None, math.nan, stats)
    best_idx = int(archive.loc[archive["feasible"], "score"].idxmax())
    return SearchResult(
        archive, ArchSpec.from_json(archive.at[best_idx, "spec"]), float(archive.at[best_idx, "score"]), stats
    )
