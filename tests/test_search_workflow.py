"""Every search method through Snakemake on a tiny config: ``results/pareto_cpu.parquet`` from
each of the six, the common tables, the report, and several methods compared in one run."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from paretolm.config import load_config
from paretolm.core import pareto
from paretolm.core.artifacts import read_provenance, read_table
from paretolm.core.counting import count
from paretolm.core.spaces import SearchSpace
from paretolm.ops.audit import audit
from paretolm.search.methods import COLUMNS

REPO = Path(__file__).resolve().parents[1]
SEQ = 16
SPACES = {
    "tiny": {
        "backbone": "gpt2",
        "fixed": {"vocab_size": 512, "max_seq_len": 32},
        "genes": {
            "n_layer": {"min": 1, "max": 3},
            "d_model": {"min": 32, "max": 96, "step": 32},
            "n_head": {"choices": [1, 2, 4], "per": "layer"},
            "d_inner": {"min": 64, "max": 256, "step": 64, "per": "layer"},
        },
    },
    "tiny_merino": {
        "backbone": "merino",
        "fixed": {"vocab_size": 512, "max_seq_len": 32, "n_block": 2, "d_head": 16},
        "genes": {
            "d_model": {"choices": [16, 32, 48], "per": "block"},
            "ffn_ratio": {"choices": [1.0, 2.0], "per": "block"},
            "n_layer": {"min": 1, "max": 2, "per": "block"},
        },
    },
    "tiny_par": {
        "backbone": "par",
        "fixed": {"vocab_size": 320, "max_seq_len": 32, "n_sublayer": 4, "d_model": 16, "n_head": 2, "d_inner": 32},
        "genes": {"layers": {"choices": ["s", "f", "i"], "per": "sublayer"}},
    },
}
METHODS = ("lts", "merino", "speedlimit", "par", "random", "nsga2")


def merino_budget() -> float:
    flops = sorted(count(s, SEQ).flops for s in SearchSpace.from_dict(SPACES["tiny_merino"]).sample(20, seed=0))
    return float(flops[len(flops) // 2])


def base_config() -> dict:
    return {
        "targets": ["cpu"],
        "sample": {"spaces": ["tiny"], "n": 6, "seed": 0},
        "proxies": {"names": ["decoder_params", "total_params", "flops", "merino_entropy"], "seq_len": SEQ},
        "profile": {
            "batch": 1,
            "seq_len": SEQ,
            "decode_tokens": 4,
            "warmup": 1,
            "min_repeats": 10,
            "max_repeats": 10,
            "rel_iqr_max": 0.5,
        },
        "hardware": {"cpu": {"device": "cpu", "threads": 1}},
        "datasets": {"text": {"files": "data/text.txt", "split": {"train": 0.9, "validation": 0.1}}},
        "tokenizers": {"bpe": {"type": "bpe", "vocab_size": 300, "train_on": "text"}},
        "train": {"dataset": "text", "tokenizer": "bpe"},
        "search": {
            "space": "tiny",
            "seed": 0,
            "bounds": {"latency_ms_max": 1000.0},  # speedlimit's upper bound; every tiny model is under it
            "lts": {"iterations": 1, "population": 6, "parents": 2, "mutations": 2, "crossovers": 2},
            "random": {"candidates": 8},
            "nsga2": {"population": 6, "generations": 1},
            "speedlimit": {"population": 4, "iterations": 1, "parents": 2, "mutations": 2, "crossovers": 1},
            "merino": {
                "space": "tiny_merino",
                "population": 8,
                "iterations": 40,
                "init_samples": 4,
                "max_flops": merino_budget(),
                "top": 3,
            },
            "par": {
                "space": "tiny_par",
                "data": {"dataset": "text", "tokenizer": "bpe"},
                "steps": 2,
                "batch_size": 2,
                "seq_len": SEQ,
                "cost_weights": [0.0, 50.0],
            },
        },
    }


def snakemake(wd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=wd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and out.returncode != 0:
        raise AssertionError(f"snakemake {args} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("methods")
    shutil.copytree(REPO / "workflow", wd / "workflow")
    (wd / "config/spaces").mkdir(parents=True)
    for name, space in SPACES.items():
        (wd / f"config/spaces/{name}.yaml").write_text(yaml.safe_dump(space))
    (wd / "config/config.yaml").write_text(yaml.safe_dump(base_config()))
    (wd / "data").mkdir()
    rng = random.Random(0)
    words = "the a of to and in that is was he for it with as his on be at by i this had not are but".split()
    (wd / "data/text.txt").write_text("\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(2000)))
    return wd


@pytest.fixture(scope="module")
def searched(workdir: Path) -> Path:
    """All six methods on one target in one run (one job each)."""
    snakemake(workdir, *[f"results/search/{m}/cpu/frontier.parquet" for m in METHODS])
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_every_method_makes_the_frontier_target(searched: Path, method: str) -> None:
    workdir = searched
    over: dict = {"search": {"method": method}}
    (workdir / f"{method}.yaml").write_text(yaml.safe_dump(over))
    out = snakemake(workdir, "results/pareto_cpu.parquet", "--configfile", "config/config.yaml", f"{method}.yaml")
    assert "rule search:" not in out.stdout + out.stderr  # choosing the method only publishes its frontier
    folder = workdir / f"results/search/{method}/cpu"
    archive, front = read_table(folder / "archive.parquet"), read_table(folder / "frontier.parquet")
    pareto_cpu = read_table(workdir / "results/pareto_cpu.parquet")
    assert list(archive.columns[: len(COLUMNS)]) == list(COLUMNS) and len(front) >= 1
    assert front["arch_id"].tolist() == pareto_cpu["arch_id"].tolist()
    assert front["measured"].all() and archive["measured"].any()
    objectives = read_provenance(folder / "frontier.parquet")["objectives"]
    pool = archive[archive["feasible"] & archive["measured"]]
    assert set(front["arch_id"]) == set(pareto.pareto_front(pool, objectives)["arch_id"])
    report = json.loads((folder / "report.json").read_text())
    assert report["method"] == method and report["measure"] == "all"
    # PAR's few argmax architectures can all lie beyond the profiled samples' reference point
    assert report["hypervolume"] > 0 or (method == "par" and report["hypervolume"] == 0)
    assert report["measurements"]["total"] >= report["measurements"]["profile"] > 0
    assert (folder / "hypervolume.png").exists() and (workdir / "results/pareto_cpu.png").exists()
    cwd = os.getcwd()
    os.chdir(workdir)  # the config's paths are relative to the working directory
    try:
        cfg = load_config(workdir / "config/config.yaml", over, root=workdir)
        found = [f for f in audit("results", cfg) if f"search/{method}/" in f.path or "pareto_cpu" in f.path]
    finally:
        os.chdir(cwd)
    assert found == []


@pytest.mark.slow
def test_methods_compared_on_one_target_in_one_run(searched: Path) -> None:
    workdir = searched
    assert (
        snakemake(workdir, "-n", *[f"results/search/{m}/cpu/frontier.parquet" for m in METHODS]).stdout.count(
            "rule search:"
        )
        == 0
    )  # done, and nothing to redo
    targets = [f"results/search/{m}/cpu/frontier.parquet" for m in ("lts", "random", "nsga2")]
    out = snakemake(workdir, "-n", *targets, "--config", "search={measure: verify}")
    planned = out.stdout + out.stderr
    assert planned.count("rule search:") == 3 and "rule pareto:" not in planned
    # a method asked for on the command line gets its checks before any job
    bad = snakemake(
        workdir,
        "-n",
        "results/search/merino/cpu/frontier.parquet",
        "--config",
        "search={merino: {max_flops: null}}",
        check=False,
    )
    assert bad.returncode != 0 and "search.merino.max_flops" in bad.stdout + bad.stderr
