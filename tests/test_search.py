"""LTS's evolutionary search with a deterministic fake measurement (no models built)."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import tiny_space

from paretolm.config import load_config, load_schema
from paretolm.core import pareto
from paretolm.core.arch import ArchSpec
from paretolm.hardware.profiling import Profiler, Settings
from paretolm.search.methods import measure_each
from paretolm.search.methods.lts import EvolutionarySearch, SearchConfig

SPACE = tiny_space()


def fake_params(spec: ArchSpec) -> int:
    return sum(4 * spec.d_model**2 + 2 * spec.d_model * d for d in spec.d_inner)


def fake_latency(spec: ArchSpec) -> float:
    # not monotone in params, so the frontier is a real trade-off
    return 0.1 * spec.n_layer + sum(spec.d_inner) / 1000 + 0.37 * sum(spec.n_head) / spec.n_layer


class Counter:
    def __init__(self):
        self.calls: list[str] = []

    def __call__(self, spec: ArchSpec) -> dict:
        self.calls.append(spec.arch_id)
        return {
            "arch_id": spec.arch_id,
            "latency_ms": fake_latency(spec),
            "latency_iqr_ms": 0.0,
            "peak_memory_mb": spec.d_model * spec.n_layer / 10 + max(spec.d_inner) / 50,
        }


def score(specs) -> pd.DataFrame:
    return pd.DataFrame([{"arch_id": s.arch_id, "decoder_params": float(fake_params(s))} for s in specs])


def small_cfg(**kw) -> SearchConfig:
    """The schema's defaults with a small budget, then ``kw`` (fields of SearchConfig)."""
    section = load_config(
        overrides={
            "search": {
                "seed": 3,
                "lts": {"iterations": 4, "population": 12, "parents": 4, "mutations": 6, "crossovers": 6},
            }
        }
    )["search"]
    cfg = SearchConfig.from_config(section)
    return SearchConfig(**{**cfg.__dict__, **kw})


def run(cfg: SearchConfig, initial=()):
    measure = Counter()
    search = EvolutionarySearch(SPACE, cfg, measure_each(measure), score, initial)
    archive, front = search.run()
    return search, measure, archive, front


def test_frontier_is_exactly_the_non_dominated_archive():
    search, measure, archive, front = run(small_cfg())
    objectives = {"decoder_params": "max", "latency_ms": "min", "peak_memory_mb": "min"}
    expected = pareto.pareto_front(archive, objectives)
    assert set(front["arch_id"]) == set(expected["arch_id"])
    pts = pareto.to_minimisation(archive, objectives)
    ids = archive["arch_id"].tolist()
    for fid in front["arch_id"]:
        i = ids.index(fid)
        assert not any((pts[j] <= pts[i]).all() and (pts[j] < pts[i]).any() for j in range(len(ids)))
    # every candidate was measured once, none twice
    assert len(measure.calls) == len(set(measure.calls)) == len(archive)
    assert archive["arch_id"].is_unique


def test_archive_records_iterations_and_parents():
    search, _, archive, _ = run(small_cfg())
    assert set(archive["iteration"]) == set(range(0, 5))
    first_seen = dict(zip(archive["arch_id"], archive["iteration"], strict=True))
    for row in archive.itertuples():
        if row.origin in ("sample", "random"):
            assert row.iteration == 0 and list(row.parents) == []
        else:
            want = 1 if row.origin == "mutation" else 2
            assert len(row.parents) == want
            assert all(first_seen[p] < row.iteration for p in row.parents)
    per_iter = archive[archive["iteration"] > 0].groupby("iteration").size()
    assert (per_iter <= 12).all() and per_iter.sum() > 0


def test_same_seed_same_result_other_seed_differs():
    _, _, a1, f1 = run(small_cfg())
    _, _, a2, f2 = run(small_cfg())
    pd.testing.assert_frame_equal(a1, a2)
    pd.testing.assert_frame_equal(f1, f2)
    _, _, a3, _ = run(small_cfg(seed=4))
    assert a3["arch_id"].tolist() != a1["arch_id"].tolist()


def test_bounds_are_checked_before_measuring():
    cap = 60_000
    search, measure, archive, front = run(small_cfg(params_max=cap, latency_ms_max=1.5))
    assert (archive["decoder_params"] <= cap).all()
    assert search.rejected["bounds"] > 0
    # rejected children were never measured
    assert len(measure.calls) == len(archive)
    assert not archive["feasible"].all()  # some measured candidates break the latency cap
    assert (front["latency_ms"] <= 1.5).all()


def test_objectives_are_switchable():
    _, _, archive, front = run(small_cfg(proxy=None, memory=False))
    best = archive["latency_ms"].min()
    assert (front["latency_ms"] == best).all()
    with pytest.raises(ValueError, match="search.objectives"):
        small_cfg(proxy=None, latency=False, memory=False).check()


def test_initial_population_starts_from_the_profiled_samples():
    specs = SPACE.sample(5, seed=1)
    search, measure, archive, _ = run(small_cfg(population=8, iterations=1), initial=specs)
    init = archive[archive["iteration"] == 0]
    assert init["origin"].tolist()[:5] == ["sample"] * 5 and len(init) == 8
    assert init["arch_id"].tolist()[:5] == [s.arch_id for s in specs]


def test_config_from_section_and_bad_values():
    section = {
        "lts": {"iterations": 2, "population": 10, "parents": 3},
        "objectives": {"proxy": "flops", "memory": False},
        "bounds": {"params": {"column": "total_params", "max": 5e6}, "latency_ms_max": 20},
    }
    config = load_config(overrides={"search": section, "proxies": {"names": ["flops", "total_params"]}})
    cfg = SearchConfig.from_config(config["search"])
    assert cfg.objectives() == {"flops": "max", "latency_ms": "min"}
    assert cfg.params_column == "total_params" and cfg.params_max == 5e6 and cfg.latency_ms_max == 20
    with pytest.raises(ValueError, match="search.lts.parents"):
        SearchConfig.from_config(
            {**config["search"], "lts": {**config["search"]["lts"], "population": 5, "parents": 6}}
        )
    schema = load_schema()["properties"]["search"]["properties"]["lts"]["properties"]
    defaults = SearchConfig.from_config({**config["search"], "lts": {k: v["default"] for k, v in schema.items()}})
    assert (
        defaults.iterations,
        defaults.population,
        defaults.parents,
        defaults.mutations,
        defaults.mutation_prob,
        defaults.crossovers,
    ) == (30, 100, 20, 40, 0.3, 40)  # the schema: LTS's


def test_search_through_cache_reuses_measurements(tmp_path):
    fake = Counter()
    settings = Settings(seq_len=16)
    prof = Profiler("cpu", settings, tmp_path, measure_fn=lambda spec, s: fake(spec))
    EvolutionarySearch(SPACE, small_cfg(), measure_each(prof), score).run()
    first = prof.counts()
    assert first["measured"] == len(fake.calls) and first["measured"] > 0
    prof2 = Profiler("cpu", settings, tmp_path, measure_fn=lambda spec, s: fake(spec))
    a2, _ = EvolutionarySearch(SPACE, small_cfg(), measure_each(prof2), score).run()
    assert prof2.counts() == {"measured": 0, "cache_hits": len(a2), "invalid_entries": 0}
