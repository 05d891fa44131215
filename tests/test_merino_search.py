"""MeRino's evolutionary search: budgets, determinism, archive, and that it beats random search."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from paretolm.cli import main
from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import read_provenance, read_table
from paretolm.core.counting import count
from paretolm.core.spaces import load_space
from paretolm.search.methods.merino import MerinoConfig, merino_search, random_search

SPACE = "config/spaces/merino.yaml"


@pytest.fixture(scope="module")
def space():
    return load_space(SPACE)


def decoder_params_proxy(spec: ArchSpec, seq_len: int = 192) -> float:
    return float(count(spec, seq_len).decoder_params)


@pytest.mark.parametrize("budget", [{"max_flops": 15e9}, {"max_params": 12e6}, {"max_flops": 30e9, "max_params": 20e6}])
def test_every_feasible_candidate_respects_the_budget(space, budget):
    r = merino_search(space, iterations=600, population=32, seed=1, **budget)
    a = r.archive
    feas = a[a["feasible"]]
    assert len(feas) > 100 and (~a["feasible"]).any()
    for _, row in feas.iterrows():
        c = count(ArchSpec.from_json(row["spec"]), 192)  # recount from the stored spec
        assert c.flops == row["flops"] and c.total_params == row["params"]
        assert c.flops <= budget.get("max_flops", float("inf"))
        assert c.total_params <= budget.get("max_params", float("inf"))
    infeasible = a[~a["feasible"]]
    assert infeasible["score"].isna().all()
    over = (infeasible["flops"] > budget.get("max_flops", float("inf"))) | (
        infeasible["params"] > budget.get("max_params", float("inf"))
    )
    assert over.all()
    best = count(r.best, 192)
    assert best.flops <= budget.get("max_flops", float("inf"))
    assert r.best_score == feas["score"].max()


def test_deterministic_with_seed(space):
    a = merino_search(space, iterations=400, population=16, seed=7, max_flops=20e9)
    b = merino_search(space, iterations=400, population=16, seed=7, max_flops=20e9)
    c = merino_search(space, iterations=400, population=16, seed=8, max_flops=20e9)
    cols = ["arch_id", "iteration", "origin", "parents", "score", "flops", "feasible"]
    pd.testing.assert_frame_equal(a.archive[cols], b.archive[cols])
    assert a.best == b.best
    assert list(a.archive["arch_id"]) != list(c.archive["arch_id"])


def test_archive_is_unique_and_children_name_evaluated_parents(space):
    r = merino_search(
        space,
        iterations=500,
        population=16,
        seed=3,
        max_params=15e6,
        crossover_prob=0.3,
        parent_selection="tournament",
        tournament_size=4,
    )
    a = r.archive
    assert a["arch_id"].is_unique
    index = {aid: i for i, aid in enumerate(a["arch_id"])}
    children = a[a["iteration"] > 0]
    assert set(children["origin"]) == {"mutation", "crossover+mutation"}
    for i, row in children.iterrows():
        for pid in row["parents"].split(","):
            assert index[pid] < i and a.at[index[pid], "feasible"]  # parents come from the population
    assert (a["iteration"].diff().fillna(0) >= 0).all()
    assert r.stats["candidates"] == len(a) and r.stats["candidates_per_second"] > 0


@pytest.mark.parametrize("budget", [{"max_flops": 20e9}, {"max_params": 20e6}])
def test_entropy_search_beats_random_sampling_at_equal_budget(space, budget):
    r = merino_search(space, iterations=1500, population=64, seed=0, **budget)
    draws = len(r.archive) + r.stats["duplicates"]
    for seed in (0, 1):
        base = random_search(space, draws, seed=seed, **budget)
        assert r.best_score > base.best_score


def test_custom_proxy_is_maximised(space):
    r = merino_search(space, decoder_params_proxy, iterations=1500, population=32, seed=0, max_flops=20e9)
    base = random_search(space, len(r.archive) + r.stats["duplicates"], decoder_params_proxy, seed=0, max_flops=20e9)
    assert r.best_score >= base.best_score
    assert r.best_score == count(r.best, 192).decoder_params
    assert r.stats["proxy"] == "decoder_params_proxy"


def test_tiny_budget_falls_back_to_the_smallest_architecture_or_fails(space):
    smallest = space.decode({k: min(g.choices) for k, g in space.keys()})
    c = count(smallest, 192)
    r = merino_search(space, iterations=50, population=4, seed=0, max_flops=c.flops, init_samples=5)
    assert r.archive.at[0, "origin"] in ("init", "smallest")
    assert count(r.best, 192).flops <= c.flops
    with pytest.raises(ValueError, match="max_flops"):
        merino_search(space, iterations=5, max_flops=c.flops - 1)


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"population": 0}, "population"),
        ({"parent_selection": "best"}, "parent_selection"),
        ({"mutation_prob": 1.5}, "mutation_prob"),
        ({"max_flops": -1}, "max_flops"),
        ({"param_field": "flops"}, "param_field"),
    ],
)
def test_bad_settings_name_the_field(bad, field):
    with pytest.raises(ValueError, match=field):
        MerinoConfig(**bad)


def test_no_budget_and_data_proxy_are_rejected(space):
    with pytest.raises(ValueError, match="max_flops"):
        merino_search(space, iterations=5)
    with pytest.raises(ValueError, match="proxy"):
        merino_search(space, "synflow", iterations=5, max_flops=1e10)


def test_cli_writes_archive_with_provenance(tmp_path, capsys):
    out = tmp_path / "archive.parquet"
    rc = main(
        [
            "merino",
            "search",
            "--space",
            SPACE,
            "--max-flops",
            "2e10",
            "--iterations",
            "200",
            "--population",
            "16",
            "--seed",
            "5",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    table = read_table(out)
    prov = read_provenance(out)
    assert prov["stage"] == "merino-search" and prov["config"]["seed"] == 5
    assert table["feasible"].any() and (table.loc[table["feasible"], "flops"] <= 2e10).all()
    assert printed["best"]["arch_id"] == table.loc[table["score"].idxmax(), "arch_id"]
    assert main(["merino", "search", "--space", SPACE, "--iterations", "5"]) == 2
