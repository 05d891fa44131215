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
from conftest import TINY_SPACES, tiny_name

from paretolm.config import load_config
from paretolm.core import pareto
from paretolm.core.artifacts import read_provenance, read_table
from paretolm.ops.audit import audit
from paretolm.search.methods import COLUMNS, METHODS

REPO = Path(__file__).resolve().parents[1]
SEQ = 16


def method_block(method: str) -> dict:
    """A method's test settings on the tiny space of its backbone; a method that trains on data
    trains on this test's text."""
    plugin = METHODS.get(method)
    block = {**plugin.test_settings, "space": tiny_name(plugin.backbone) if plugin.backbone else None}
    if "data" in block:
        block["data"] = {"dataset": "text", "tokenizer": "bpe"}
    return block


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
            **{m: method_block(m) for m in METHODS.names()},
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
    for backbone, space in TINY_SPACES.items():
        (wd / f"config/spaces/{tiny_name(backbone)}.yaml").write_text(yaml.safe_dump(space))
    (wd / "config/config.yaml").write_text(yaml.safe_dump(base_config()))
    (wd / "data").mkdir()
    rng = random.Random(0)
    words = "the a of to and in that is was he for it with as his on be at by i this had not are but".split()
    (wd / "data/text.txt").write_text("\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(2000)))
    return wd


@pytest.fixture(scope="module")
def searched(workdir: Path) -> Path:
    """Every registered method on one target in one run (one job each)."""
    snakemake(workdir, *[f"results/search/{m}/cpu/frontier.parquet" for m in METHODS.names()])
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS.names())
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
    # a method searching a space of its own backbone (merino, par), not the profiled one, can have
    # every point beyond the reference point the profiled samples set
    assert report["hypervolume"] > 0 or (METHODS.get(method).backbone and report["hypervolume"] == 0)
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
        snakemake(workdir, "-n", *[f"results/search/{m}/cpu/frontier.parquet" for m in METHODS.names()]).stdout.count(
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
