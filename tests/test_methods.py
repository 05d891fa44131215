"""Every search method through ``paretolm.search.methods.search`` on the replay device: the common
tables, frontiers of measured points, determinism, and the checks each method's config gets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from paretolm.core import pareto
from paretolm.config import load_config
from paretolm.search.methods import COLUMNS, SearchProblem, common_table, measure_each, search
from paretolm.hardware.profiling import Settings
from paretolm.proxies import Scorer
from paretolm.hardware.replay import ReplayDevice
from paretolm.core.spaces import SearchSpace
from paretolm.stages.search import section

SEQ = 16
SPACES = {
    "gpt2": {"backbone": "gpt2", "fixed": {"vocab_size": 512, "max_seq_len": 32},
             "genes": {"n_layer": {"min": 1, "max": 4}, "d_model": {"min": 32, "max": 128, "step": 32},
                       "n_head": {"choices": [1, 2, 4], "per": "layer"},
                       "d_inner": {"min": 64, "max": 512, "step": 64, "per": "layer"}}},
    "merino": {"backbone": "merino", "fixed": {"vocab_size": 512, "max_seq_len": 64, "n_block": 2, "d_head": 16},
               "genes": {"d_model": {"choices": [16, 32, 48, 64], "per": "block"},
                         "ffn_ratio": {"choices": [1.0, 2.0, 3.0], "per": "block"},
                         "n_layer": {"min": 1, "max": 3, "per": "block"}}},
    "par": {"backbone": "par", "fixed": {"vocab_size": 64, "max_seq_len": 32, "n_sublayer": 4, "d_model": 16,
                                         "n_head": 2, "d_inner": 32},
            "genes": {"layers": {"choices": ["s", "f", "i"], "per": "sublayer"}}},
}
METHOD_SPACE = {"lts": "gpt2", "random": "gpt2", "nsga2": "gpt2", "speedlimit": "gpt2", "merino": "merino",
                "par": "par"}
BLOCKS = {
    "lts": {"iterations": 3, "population": 10, "parents": 4, "mutations": 5, "crossovers": 5},
    "random": {"candidates": 20},
    "nsga2": {"population": 10, "generations": 3},
    "speedlimit": {"population": 8, "iterations": 2, "parents": 3, "mutations": 4, "crossovers": 2},
    "merino": {"population": 16, "iterations": 200, "init_samples": 8, "max_flops": 2e6, "top": 6},
    # the data block passes the config check; the tokens themselves are given to the problem
    "par": {"steps": 3, "batch_size": 2, "seq_len": 16, "cost_weights": [0.0, 50.0],
            "data": {"dataset": "kjv", "tokenizer": "gpt2"}},
}


class Counted:
    """The replay device, counting its calls."""

    def __init__(self, noise: float = 0.03):
        self.device = ReplayDevice(noise=noise)
        self.calls: list[str] = []

    def __call__(self, spec) -> dict:
        self.calls.append(spec.arch_id)
        return self.device(spec, Settings(seq_len=SEQ))


def problem(method: str, measure: str = "all", n: int = 10, **search_over) -> tuple[SearchProblem, Counted]:
    block = {**BLOCKS[method], **search_over.pop(method, {})}
    cfg = load_config(overrides={"search": {"method": method, "measure": measure, method: block, **search_over},
                                 "proxies": {"names": ["decoder_params", "total_params", "flops", "merino_entropy"],
                                             "seq_len": SEQ}})
    settings = section(cfg, method)
    space = SearchSpace.from_dict(SPACES[METHOD_SPACE[method]], name=METHOD_SPACE[method])
    scorer = Scorer.from_part(cfg["proxies"])
    device = Counted()
    specs = space.sample(n, seed=0)
    table = pd.DataFrame([device.device(s, Settings(seq_len=SEQ)) for s in specs])
    table = table.merge(scorer.table(specs, costs=False), on="arch_id")
    table.insert(1, "spec", [s.to_json() for s in specs])
    data = np.random.default_rng(0).integers(0, 64, 4000) if method == "par" else None
    return SearchProblem(space=space, settings=settings, hardware=measure_each(device), scorer=scorer,
                         initial=table, data=data, seq_len=SEQ), device


def speedlimit_bound(p: SearchProblem) -> float:
    return float(p.initial["latency_ms"].median())


def run(method: str, measure: str = "all", **over):
    if method == "speedlimit" and "bounds" not in over:  # the bound: the median profiled latency
        p, _ = problem(method, measure, bounds={"latency_ms_max": 1e9}, **over)
        over["bounds"] = {"latency_ms_max": speedlimit_bound(p)}
    p, device = problem(method, measure, **over)
    return search(p, device), device


@pytest.mark.parametrize("method", list(BLOCKS))
def test_every_method_writes_the_common_tables_and_repeats_them(method: str) -> None:
    result, device = run(method)
    again, _ = run(method)  # same config, same seed, same measurements: same result
    pd.testing.assert_frame_equal(result.archive, again.archive)
    pd.testing.assert_frame_equal(result.frontier, again.frontier)
    archive, front = result.archive, result.frontier
    objectives = {"decoder_params": "max", "latency_ms": "min", "peak_memory_mb": "min"}
    assert list(archive.columns[:len(COLUMNS)]) == list(COLUMNS)
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
    assert set(archive["cost_weight"]) <= {0.0, 50.0} and len(archive) == len(set(device.calls))
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
    result, device = run(method, "verify", verify={"initial": 4, "batch": 4, "explore": 1, "predictor": predictor},
                         **{method: more})
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
    raw = pd.DataFrame({"arch_id": ["a", "b", "a"], "spec": ["{}", "{}", "{}"], "parents": ["x,y", None, ""],
                        "latency_ms": [1.0, 2.0, 3.0], "score": [1, 2, 3]})
    table = common_table(raw, {"latency_ms": "min", "decoder_params": "max"})
    assert list(table.columns[:len(COLUMNS)]) == list(COLUMNS) and len(table) == 2
    assert table["parents"].tolist() == [["x", "y"], []]
    assert not table["measured"].any() and table["feasible"].all() and table["decoder_params"].isna().all()


@pytest.mark.parametrize("over, message", [
    ({"search": {"method": "merino", "merino": {"space": "gpt2_cpu_small"}}},
     r"search.merino.space: merino searches a block-wise merino space"),
    ({"search": {"method": "merino", "space": "merino", "merino": {"max_flops": None}}},
     r"search.merino.max_flops: give a FLOPs"),
    ({"search": {"method": "par", "par": {"space": "par"}}}, r"search.par.data: par trains a supernet"),
    ({"search": {"method": "par", "par": {"space": "gpt2_cpu_small", "data": {"dataset": "kjv", "tokenizer": "gpt2"}}}},
     r"search.par.space: par searches a par space"),
    ({"search": {"method": "par", "par": {"space": "par", "data": {"dataset": "nope", "tokenizer": "gpt2"}}}},
     r"search.par.data.dataset: unknown dataset 'nope'"),
    ({"search": {"method": "speedlimit"}}, r"search.bounds.latency_ms_max: speedlimit searches under"),
    ({"search": {"method": "lts", "lts": {"parents": 50, "population": 10}}}, r"search.lts.parents"),
    ({"search": {"reference": {"latency_ms": 1.0}}}, r"search.reference: needs exactly one value"),
    ({"search": {"iterations": 3}}, r"search.*iterations"),
    ({"search": {"nsga2": {"algorithm": "tpe"}}}, r"search.nsga2.algorithm"),
])
def test_each_method_gets_what_it_needs_before_the_first_job(over: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(overrides=over)


def test_every_registered_method_is_run_here() -> None:
    from paretolm.search.methods import METHODS

    assert set(BLOCKS) == set(METHODS.names())
