"""Every registered search method through ``paretolm.search.methods.search`` on the replay device,
with the small settings it declares (``Method.test_settings``) on a tiny space of the backbone it
searches: the common tables, frontiers of measured points, determinism, and the checks each
method's config gets. A method added to the registry is run here without editing this file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_space

from paretolm.config import load_config
from paretolm.core import pareto
from paretolm.hardware.profiling import Settings
from paretolm.hardware.replay import ReplayDevice
from paretolm.proxies import Scorer
from paretolm.search.driver import search
from paretolm.search.methods import COLUMNS, METHODS, SearchProblem, common_table, measure_each
from paretolm.stages.search import section

SEQ = 16


def backbone_of(method: str) -> str:
    """The backbone of the tiny space a method runs on here (gpt2 for a method of any)."""
    return METHODS.get(method).backbone or "gpt2"


class Counted:
    """The replay device, counting its calls."""

    def __init__(self, noise: float = 0.03):
        self.device = ReplayDevice(noise=noise)
        self.calls: list[str] = []

    def __call__(self, spec) -> dict:
        self.calls.append(spec.arch_id)
        return self.device(spec, Settings(seq_len=SEQ))


def problem(method: str, measure: str = "all", n: int = 10, **search_over) -> tuple[SearchProblem, Counted]:
    block = {**METHODS.get(method).test_settings, **search_over.pop(method, {})}
    cfg = load_config(
        overrides={
            "search": {"method": method, "measure": measure, method: block, **search_over},
            "proxies": {"names": ["decoder_params", "total_params", "flops", "merino_entropy"], "seq_len": SEQ},
        }
    )
    settings = section(cfg, method)
    space = tiny_space(backbone_of(method))
    scorer = Scorer.from_part(cfg["proxies"])
    device = Counted()
    specs = space.sample(n, seed=0)
    table = pd.DataFrame([device.device(s, Settings(seq_len=SEQ)) for s in specs])
    table = table.merge(scorer.table(specs, costs=False), on="arch_id")
    table.insert(1, "spec", [s.to_json() for s in specs])
    data = np.random.default_rng(0).integers(0, 64, 4000)  # tokens for a method that trains (par)
    return SearchProblem(
        space=space,
        settings=settings,
        hardware=measure_each(device),
        scorer=scorer,
        initial=table,
        data=data,
        seq_len=SEQ,
    ), device


def speedlimit_bound(p: SearchProblem) -> float:
    return float(p.initial["latency_ms"].median())


def run(method: str, measure: str = "all", **over):
    if METHODS.get(method).latency_bound and "bounds" not in over:  # the bound: the median profiled latency
        p, _ = problem(method, measure, bounds={"latency_ms_max": 1e9}, **over)
        over["bounds"] = {"latency_ms_max": speedlimit_bound(p)}
    p, device = problem(method, measure, **over)
    return search(p, device), device


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_writes_the_common_tables_and_repeats_them(method: str) -> None:
    result, device = run(method)
    again, _ = run(method)  # same config, same seed, same measurements: same result
    pd.testing.assert_frame_equal(result.archive, again.archive)
    pd.testing.assert_frame_equal(result.frontier, again.frontier)
    check_common_tables(result, device)


def check_common_tables(result, device: Counted) -> None:
    """What every method's result must be: the common columns, a frontier of measured feasible
    points, every measured number the device's, nothing measured twice, the report's trace."""
    archive, front = result.archive, result.frontier
    objectives = {"decoder_params": "max", "latency_ms": "min", "peak_memory_mb": "min"}
    assert list(archive.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert list(front.columns) == list(archive.columns)
    assert archive["arch_id"].is_unique and len(front) >= 1
    for col in ("in_bounds", "feasible", "measured", "on_front"):
        assert archive[col].dtype == bool
    assert all(isinstance(p, list) for p in archive["parents"])
    assert str(archive["measured_at"].dtype) == "Int64"
    # the frontier is the non-dominated set of the feasible, measured candidates
    pool = archive[archive["feasible"] & archive["measured"]]
    assert set(front["arch_id"]) == set(pareto.pareto_front(pool, objectives)["arch_id"])
    assert set(front["arch_id"]) == set(archive.loc[archive["on_front"], "arch_id"])
    assert front["measured"].all() and front["measured_at"].notna().all()
    # every measured number is the device's, and nothing was measured twice
    assert len(device.calls) == len(set(device.calls))
    measured = archive[archive["measured"]]
    for row in measured.head(5).itertuples():
        from paretolm.core.arch import ArchSpec

        again = device.device(ArchSpec.from_json(row.spec), Settings(seq_len=SEQ))
        assert row.latency_ms == pytest.approx(again["latency_ms"]) and bool(row.replay)
    stats = result.stats
    assert stats["measurements"]["total"] == stats["measurements"]["profile"] + len(device.calls)
    assert stats["hypervolume"] > 0 and stats["trace"][-1][0] == stats["measurements"]["total"]


def test_merino_keeps_its_budget_and_gives_hardware_numbers_to_its_best() -> None:
    result, device = run("merino")
    archive = result.archive
    assert (archive.loc[archive["in_bounds"], "flops"] <= 2e6).all() and (~archive["in_bounds"]).any()
    top = archive[archive["hardware"]]
    assert len(top) == 6 and top["measured"].all() and len(device.calls) <= 6
    best = archive.loc[archive["in_bounds"], "score"].max()
    assert top["score"].max() == best
    # the others have no hardware numbers, unless the profile stage had measured them
    assert archive.loc[~archive["hardware"] & ~archive["measured"], "latency_ms"].isna().all()


def test_speedlimit_never_measures_what_its_predictor_prunes() -> None:
    result, device = run("speedlimit")
    archive = result.archive
    pruned = archive[archive["status"] == "pruned"]
    assert not set(pruned["arch_id"]) & set(device.calls)
    assert not pruned["in_bounds"].any() and not pruned["feasible"].any()
    cap = result.stats["latency_cap_ms"]
    assert (result.frontier["latency_ms"] <= cap).all()


def test_par_measures_the_argmax_architecture_of_each_cost_weight() -> None:
    result, device = run("par")
    archive = result.archive
    assert set(archive["origin"]) == {"gumbel"} and archive["measured"].all()
    # each argmax architecture measured once (by the search, or already by the profile stage)
    assert set(archive["cost_weight"]) <= {0.0, 50.0} and len(device.calls) == len(set(device.calls)) <= len(archive)
    assert all(len(layers.replace("(", "").replace(")", "")) >= 1 for layers in archive["layers"])


@pytest.mark.parametrize("algorithm", ["nsga3", "moead"])
def test_other_pymoo_algorithms_run_the_same_way(algorithm: str) -> None:
    result, device = run("nsga2", nsga2={"algorithm": algorithm, "partitions": 3, "population": 10})
    assert result.stats["algorithm"] == algorithm and len(result.frontier) >= 1
    assert len(device.calls) == len(set(device.calls))


def test_nsga2_bounds_are_constraints() -> None:
    result, _ = run("nsga2", bounds={"params": {"column": "decoder_params", "max": 150_000}})
    archive = result.archive
    assert (~archive["in_bounds"]).any()  # proposed, evaluated, infeasible
    assert (result.frontier["decoder_params"] <= 150_000).all()


@pytest.mark.parametrize("method", ["lts", "random", "nsga2"])
def test_verify_keeps_predicted_numbers_off_the_frontier(method: str) -> None:
    more = {"random": {"candidates": 80}, "lts": {}, "nsga2": {}}[method]
    predictor = "auto" if method == "lts" else "roofline"  # one run chooses among every kind
    result, device = run(
        method, "verify", verify={"initial": 4, "batch": 4, "explore": 1, "predictor": predictor}, **{method: more}
    )
    archive = result.archive
    assert (~archive["measured"]).any() and archive["measured"].any()
    assert result.frontier["measured"].all()
    predicted = archive[~archive["measured"]]
    assert predicted["measured_at"].isna().all() and (predicted["latency_ms_sigma"] > 0).all()
    assert (predicted["latency_ms"] == predicted["latency_ms_predicted"]).all()
    assert len(device.calls) == len(set(device.calls)) < len(archive)
    assert result.stats["verify"]["rounds"] and result.stats["verify"]["stopped"]
    held = result.stats["heldout"]["measured"]["latency_ms"]
    assert held["n"] >= 1 and held["mape_pct"] is not None


def test_common_table_normalises_any_archive() -> None:
    raw = pd.DataFrame(
        {
            "arch_id": ["a", "b", "a"],
            "spec": ["{}", "{}", "{}"],
            "parents": ["x,y", None, ""],
            "latency_ms": [1.0, 2.0, 3.0],
            "score": [1, 2, 3],
        }
    )
    table = common_table(raw, {"latency_ms": "min", "decoder_params": "max"})
    assert list(table.columns[: len(COLUMNS)]) == list(COLUMNS) and len(table) == 2
    assert table["parents"].tolist() == [["x", "y"], []]
    assert not table["measured"].any() and table["feasible"].all() and table["decoder_params"].isna().all()


@pytest.mark.parametrize(
    "over, message",
    [
        (
            {"search": {"method": "merino", "merino": {"space": "gpt2_cpu_small"}}},
            r"search.merino.space: merino searches a merino space; 'gpt2_cpu_small' is a gpt2 space",
        ),
        (
            {"search": {"method": "merino", "space": "merino", "merino": {"max_flops": None}}},
            r"search.merino.max_flops: give a FLOPs",
        ),
        ({"search": {"method": "par", "par": {"space": "par"}}}, r"search.par.data: par trains a supernet"),
        (
            {
                "search": {
                    "method": "par",
                    "par": {"space": "gpt2_cpu_small", "data": {"dataset": "kjv", "tokenizer": "gpt2"}},
                }
            },
            r"search.par.space: par searches a par space; 'gpt2_cpu_small' is a gpt2 space",
        ),
        (
            {"search": {"method": "par", "par": {"space": "par", "data": {"dataset": "nope", "tokenizer": "gpt2"}}}},
            r"search.par.data.dataset: unknown dataset 'nope'",
        ),
        ({"search": {"method": "speedlimit"}}, r"search.bounds.latency_ms_max: speedlimit searches under"),
        ({"search": {"method": "lts", "lts": {"parents": 50, "population": 10}}}, r"search.lts.parents"),
        ({"search": {"reference": {"latency_ms": 1.0}}}, r"search.reference: needs exactly one value"),
        ({"search": {"iterations": 3}}, r"search.*iterations"),
        ({"search": {"nsga2": {"algorithm": "tpe"}}}, r"search.nsga2.algorithm"),
    ],
)
def test_each_method_gets_what_it_needs_before_the_first_job(over: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(overrides=over)


@pytest.mark.parametrize(
    "over, message",
    [
        ({"search": {"lts": {"population": 1}}}, r"search.lts.population: 1 is less than the minimum of 2"),
        ({"search": {"merino": {"parent_selection": "best"}}}, r"search.merino.parent_selection: expected one of"),
    ],
)
def test_a_method_block_is_validated_against_its_settings_class(over: dict, message: str) -> None:
    """The schema's search.<method> blocks are generated from the settings dataclasses."""
    with pytest.raises(ValueError, match=message):
        load_config(overrides=over)


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_declares_settings_whose_defaults_fill_the_config(method: str) -> None:
    from paretolm.config import validate_config
    from paretolm.core.settings import defaults

    plugin = METHODS.get(method)
    assert validate_config({})["search"][method] == defaults(plugin.settings)
    plugin.options(plugin.test_settings, method)  # the test block is a valid block
