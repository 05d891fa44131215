"""SpeedLimit's search: predictor narrowing, measured latency cap, evolution, real int8 timing."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from paretolm.core.arch import ArchSpec
from paretolm.core.counting import count
from paretolm.core.spaces import load_space
from paretolm.hardware.predictors.mlp import fit_profile
from paretolm.search.methods.speedlimit import SpeedLimitConfig, int8_latency, measure_table, speedlimit_search

SPACE = "config/spaces/speedlimit_bert.yaml"


@pytest.fixture(scope="module")
def space():
    return load_space(SPACE)


def fake_latency(spec: ArchSpec) -> float:
    """A deterministic stand-in for a measurement: grows with FLOPs and depth."""
    return 1.0 + 4e-8 * count(spec, 128).flops + 0.5 * spec.n_layer


class Recorder:
    def __init__(self, fn=fake_latency):
        self.fn = fn
        self.calls: list[str] = []

    def __call__(self, spec: ArchSpec) -> float:
        self.calls.append(spec.arch_id)
        return self.fn(spec)


def exact_predictor(specs):
    return [fake_latency(s) for s in specs]


def test_cap_is_respected_and_pruned_candidates_are_never_measured(space):
    cap = 80.0
    rec = Recorder()
    r = speedlimit_search(
        space,
        exact_predictor,
        cap,
        rec,
        population=12,
        iterations=3,
        parents=4,
        mutations=6,
        crossovers=3,
        margin=0.1,
        seed=0,
    )
    a = r.archive
    assert a["arch_id"].is_unique
    pruned = a[a["status"] == "pruned"]
    measured = a[a["status"] != "pruned"]
    assert len(pruned) > 0 and len(measured) == len(rec.calls) == r.stats["measured"]
    assert set(rec.calls) == set(measured["arch_id"])
    assert (pruned["predicted_ms"] > cap * 1.1).all() and pruned["latency_ms"].isna().all()
    assert (measured["predicted_ms"] <= cap * 1.1).all()
    feas = a[a["feasible"]]
    assert (feas["latency_ms"] <= cap).all() and (a.loc[a["status"] == "over_cap", "latency_ms"] > cap).all()
    assert fake_latency(r.best) <= cap
    assert r.best_score == feas["score"].max() == count(r.best).decoder_params
    assert set(a["origin"]) >= {"init", "mutation", "crossover"}


def test_margin_lets_predictor_errors_reach_measurement(space):
    # a predictor that is 8 % optimistic: with no margin nothing it calls over the cap is measured;
    # with a 10 % margin candidates up to 10 % over are measured and some turn out feasible
    def biased(specs):
        return [1.08 * fake_latency(s) for s in specs]

    cap = 80.0
    tight = speedlimit_search(space, biased, cap, Recorder(), population=10, iterations=0, margin=0.0, seed=2)
    loose = speedlimit_search(space, biased, cap, Recorder(), population=10, iterations=0, margin=0.1, seed=2)
    assert (tight.archive.loc[tight.archive["status"] != "pruned", "predicted_ms"] <= cap).all()
    lat_tight = tight.archive["latency_ms"].dropna()
    assert (lat_tight <= cap / 1.08 + 1e-9).all()  # never explores the band just under the cap
    band = loose.archive[(loose.archive["latency_ms"] > cap / 1.08) & loose.archive["feasible"]]
    assert len(band) > 0


def test_deterministic_and_better_than_its_initial_population(space):
    kw = dict(population=10, iterations=4, parents=3, mutations=6, crossovers=3, seed=5)
    a = speedlimit_search(space, exact_predictor, 100.0, fake_latency, **kw)
    b = speedlimit_search(space, exact_predictor, 100.0, fake_latency, **kw)
    pd.testing.assert_frame_equal(a.archive, b.archive)
    init = a.archive[(a.archive["iteration"] == 0) & a.archive["feasible"]]
    assert a.best_score > init["score"].max()


def test_no_feasible_candidate_returns_none(space):
    r = speedlimit_search(
        space, exact_predictor, 1e-3, fake_latency, population=3, iterations=2, max_attempts=3, seed=0
    )
    assert r.best is None and math.isnan(r.best_score) and r.stats["measured"] == 0


@pytest.mark.parametrize(
    "bad, field",
    [({"latency_cap_ms": 0}, "latency_cap_ms"), ({"margin": -0.1}, "margin"), ({"population": 0}, "population")],
)
def test_bad_arguments_name_the_field(space, bad, field):
    args = {"latency_cap_ms": 5.0, **bad}
    cap = args.pop("latency_cap_ms")
    with pytest.raises(ValueError, match=field):
        speedlimit_search(space, exact_predictor, cap, fake_latency, **args)
    with pytest.raises(ValueError, match="latency_ms"):
        speedlimit_search(space, exact_predictor, 50.0, lambda s: float("nan"), population=2)
    assert SpeedLimitConfig().margin == 0.1


TINY = [
    {
        "backbone": "bert",
        "n_layer": 1,
        "d_model": 120,
        "n_head": 2,
        "d_inner": 128,
        "vocab_size": 1000,
        "max_seq_len": 64,
    },
    {
        "backbone": "bert",
        "n_layer": 3,
        "d_model": 264,
        "n_head": 4,
        "d_inner": 512,
        "vocab_size": 1000,
        "max_seq_len": 64,
    },
]


@pytest.mark.slow
def test_real_int8_measurement_and_search_on_tiny_specs():
    specs = [ArchSpec.from_dict(d) for d in TINY]
    m = int8_latency(specs[0], seq_len=64, repeats=3, warmup=1)
    assert m["latency_ms"] > 0 and m["repeats"] == 3
    table = measure_table(specs, seq_len=64, repeats=3, warmup=1)
    assert list(table["arch_id"]) == [s.arch_id for s in specs]
    assert table.loc[1, "latency_ms"] > table.loc[0, "latency_ms"]  # 3 wide layers vs 1 narrow one
    # a predictor fitted on these two real measurements, and a real measure_fn, in the search
    space = load_space(SPACE)
    fixed = {**space.fixed, "vocab_size": 1000, "max_seq_len": 64}
    tiny_space = type(space)(
        name="tiny",
        backbone="bert",
        genes={
            "n_layer": space.genes["n_layer"].__class__("n_layer", (1, 2)),
            "d_model": space.genes["d_model"].__class__("d_model", (120, 240)),
            "n_head": space.genes["n_head"],
            "d_inner": space.genes["d_inner"].__class__("d_inner", (128, 256)),
        },
        fixed=fixed,
    )
    doubled = pd.concat([table] * 2, ignore_index=True)  # fit needs 4 rows
    pred = fit_profile(doubled, seq_len=64, epochs=50)
    cap = float(table.loc[1, "latency_ms"])
    r = speedlimit_search(
        tiny_space,
        pred,
        cap,
        lambda s: int8_latency(s, seq_len=64, repeats=3, warmup=1),
        population=2,
        iterations=1,
        parents=1,
        mutations=1,
        crossovers=0,
        seq_len=64,
        margin=1.0,
        seed=0,
    )
    measured = r.archive.dropna(subset=["latency_ms"])
    assert 1 <= len(measured) <= 3
    assert (measured.loc[measured["feasible"], "latency_ms"] <= cap).all()
