"""The workflow: config handling (fast) and the real Snakemake DAG on a tiny config (slow)."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from paretolm import pareto, workflow
from paretolm.artifacts import read_provenance, read_table
from paretolm.audit import audit

REPO = Path(__file__).resolve().parents[1]

TINY_SPACE = {
    "backbone": "gpt2",
    "fixed": {"vocab_size": 512, "max_seq_len": 32},
    "genes": {
        "n_layer": {"min": 1, "max": 3},
        "d_model": {"min": 32, "max": 96, "step": 32},
        "n_head": {"choices": [1, 2, 4], "per": "layer"},
        "d_inner": {"min": 64, "max": 256, "step": 64, "per": "layer"},
    },
}


def tiny_config(**overrides) -> dict:
    cfg = {
        "targets": ["cpu"],
        "sample": {"spaces": ["tiny"], "n": 8, "seed": 0},
        "proxies": {"names": ["decoder_params", "total_params", "flops"], "seq_len": 16},
        "profile": {"batch": 1, "seq_len": 16, "warmup": 1, "min_repeats": 10, "max_repeats": 12,
                    "rel_iqr_max": 0.5},
        "hardware": {"cpu": {"device": "cpu", "threads": 1},
                     "cuda": {"device": "cuda"},
                     "arm": {"device": "cpu", "arch": "x86_64" if _machine() == "aarch64" else "aarch64"}},
        "search": {"space": "tiny", "iterations": 2, "population": 8, "parents": 3, "mutations": 3,
                   "crossovers": 3, "seed": 0},
    }
    return workflow.merge(cfg, overrides)


def _machine() -> str:
    m = platform.machine().lower()
    return {"arm64": "aarch64", "amd64": "x86_64"}.get(m, m)


def make_workdir(path: Path, config: dict) -> Path:
    """A copy of the workflow (Snakefile, rules, scripts, schema) with a tiny space and config."""
    for name in ("Snakefile", "rules", "scripts", "envs"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, path / name)
    (path / "config/spaces").mkdir(parents=True)
    shutil.copy(REPO / "config/schema.yaml", path / "config/schema.yaml")
    (path / "config/spaces/tiny.yaml").write_text(yaml.safe_dump(TINY_SPACE))
    (path / "config/config.yaml").write_text(yaml.safe_dump(config))
    return path


def snakemake(workdir: Path, *args: str, check: bool = True,
              timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Jobs a dry run would execute, from its 'Job stats' table."""
    out = snakemake(workdir, "-n", *args)
    text = out.stdout + out.stderr
    if "Nothing to be done" in text:
        return {}
    block = text.split("Job stats:")[1].split("\n\n")[0]
    jobs = {}
    for line in block.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


# -- fast: config -----------------------------------------------------------------------------
def test_config_defaults_and_misspelt_key(tmp_path):
    cfg = workflow.validate_config({}, REPO)
    assert cfg["search"]["iterations"] == 30 and cfg["search"]["population"] == 100
    assert cfg["hardware"]["cpu"]["threads"] == 1 and cfg["profile"]["seq_len"] == 192
    with pytest.raises(ValueError, match="search: .*'iteratoins' was unexpected"):
        workflow.validate_config({"search": {"iteratoins": 3}}, REPO)
    with pytest.raises(ValueError, match="profile.min_repeats"):
        workflow.validate_config({"profile": {"min_repeats": 5}}, REPO)
    with pytest.raises(ValueError, match="search.parents"):
        workflow.validate_config({"search": {"parents": 50, "population": 10}}, REPO)
    with pytest.raises(ValueError, match="hardware.gpu.device"):
        workflow.validate_config({"hardware": {"gpu": {"device": "tpu"}}}, REPO)


def test_shipped_configs_validate():
    base = workflow.load_config(REPO / "config/config.yaml", root=REPO)
    assert base["targets"] == ["cpu"] and base["search"]["space"] == "gpt2_cpu_small"
    for preset in ("lts-gpt2", "lts-transformer-xl"):
        with open(REPO / f"config/presets/{preset}.yaml") as fh:
            over = yaml.safe_load(fh)
        cfg = workflow.load_config(REPO / "config/config.yaml", over, root=REPO)
        s = cfg["search"]
        assert (s["iterations"], s["population"], s["parents"], s["mutations"], s["mutation_prob"],
                s["crossovers"]) == (30, 100, 20, 40, 0.3, 40)
        assert (cfg["profile"]["batch"], cfg["profile"]["seq_len"]) == (1, 192)


def test_stage_parts_separate_what_matters(tmp_path):
    (tmp_path / "config/spaces").mkdir(parents=True)
    (tmp_path / "config/spaces/tiny.yaml").write_text(yaml.safe_dump(TINY_SPACE))
    cfg = workflow.validate_config(tiny_config(spaces_dir=str(tmp_path / "config/spaces")), REPO)
    part = lambda c, stage, **wc: workflow.stage_config(c, stage, **wc)  # noqa: E731
    routing = {"resources": {"mem_mb": 1}, "slurm": {"partition": "x"}}
    routed = workflow.merge(cfg, {"hardware": {"cpu": routing}, "profile": {"cache": "elsewhere"}})
    assert part(routed, "profile", hardware="cpu") == part(cfg, "profile", hardware="cpu")
    searched = workflow.merge(cfg, {"search": {"iterations": 5}})
    assert part(searched, "profile", hardware="cpu") == part(cfg, "profile", hardware="cpu")
    assert part(searched, "search", hardware="cpu") != part(cfg, "search", hardware="cpu")
    assert part(searched, "sample", space="tiny") == part(cfg, "sample", space="tiny")
    other_hw = workflow.merge(cfg, {"hardware": {"cuda": {"threads": 8}}})
    assert part(other_hw, "profile", hardware="cpu") == part(cfg, "profile", hardware="cpu")


def test_proxy_data_block_is_self_contained():
    cfg = workflow.validate_config(tiny_config(), REPO)
    assert workflow.proxy_batch(cfg["proxies"], ["decoder_params"]) is None
    with pytest.raises(ValueError, match=r"proxies.data: proxies \['synflow'\] need a token batch"):
        workflow.proxy_batch(cfg["proxies"], ["decoder_params", "synflow"])
    data = workflow.merge(cfg, {"proxies": {"data": {"dataset": "shakespeare", "tokenizer": "gpt2"}},
                                "datasets": {"shakespeare": {"files": "a.txt"}}})
    part = workflow.proxies_part(data)["data"]
    assert part["datasets"] == {"shakespeare": {"files": "a.txt"}} and part["tokenizers"] == {}
    edited = workflow.merge(data, {"datasets": {"shakespeare": {"files": "b.txt"}}})
    assert workflow.canonical_hash(workflow.proxies_part(edited)) != workflow.canonical_hash(
        workflow.proxies_part(data))


def test_params_files_rewritten_only_on_change(tmp_path):
    path = tmp_path / "p.json"
    assert workflow.write_params(path, {"a": 1})
    mtime = path.stat().st_mtime_ns
    time.sleep(0.01)
    assert not workflow.write_params(path, {"a": 1})
    assert path.stat().st_mtime_ns == mtime
    assert workflow.write_params(path, {"a": 2})
    assert workflow.read_params(path) == {"a": 2}


# -- slow: the real workflow ------------------------------------------------------------------
@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    wd = make_workdir(tmp_path_factory.mktemp("wf"), tiny_config())
    snakemake(wd, "-q")
    return wd


@pytest.mark.slow
def test_artifacts_schemas_and_provenance(ran):
    wd = ran
    samples = read_table(wd / "results/samples/tiny.parquet")
    assert len(samples) == 8 and samples["arch_id"].is_unique
    assert {"arch_id", "spec", "n_layer", "d_model", "n_head", "d_inner"} <= set(samples.columns)
    assert isinstance(list(samples["n_head"].iloc[0]), list)
    proxies = read_table(wd / "results/proxies/tiny.parquet")
    assert {"decoder_params", "decoder_params_seconds", "total_params", "flops"} <= set(proxies.columns)
    prof = read_table(wd / "results/profile/cpu/tiny.parquet")
    measured = {"arch_id", "latency_ms", "latency_iqr_ms", "peak_memory_mb"}
    assert measured | {"decoder_params"} <= set(prof.columns)
    assert (prof["latency_ms"] > 0).all() and (prof["repeats"] >= 10).all()
    assert (prof["peak_memory_mb"] > prof["weights_mb"]).all()
    archive = read_table(wd / "results/search/cpu/archive.parquet")
    front = read_table(wd / "results/pareto_cpu.parquet")
    assert measured | {"spec", "decoder_params"} <= set(front.columns)
    assert set(archive["iteration"]) == {0, 1, 2}
    for path in ("samples/tiny", "proxies/tiny", "profile/cpu/tiny", "search/cpu/archive", "pareto_cpu"):
        prov = read_provenance(wd / f"results/{path}.parquet")
        assert prov and {"config_hash", "code", "libraries", "hardware", "inputs"} <= set(prov)
        assert prov["libraries"]["torch"] and prov["inputs"]
    assert (wd / "results/pareto_cpu.png").stat().st_size > 10_000
    assert (wd / "logs/profile/cpu/tiny.log").read_text().count("INFO paretolm.profiling: measured ") == 8
    cfg = workflow.load_config(wd / "config/config.yaml", root=wd)
    cwd = os.getcwd()
    os.chdir(wd)
    try:
        assert audit("results", cfg) == []
    finally:
        os.chdir(cwd)


@pytest.mark.slow
def test_frontier_is_non_dominated_set_of_archive(ran):
    archive = read_table(ran / "results/search/cpu/archive.parquet")
    front = read_table(ran / "results/pareto_cpu.parquet")
    objectives = {"decoder_params": "max", "latency_ms": "min", "peak_memory_mb": "min"}
    assert set(front["arch_id"]) == set(pareto.pareto_front(archive, objectives)["arch_id"])
    assert set(front["arch_id"]) == set(archive.loc[archive["on_front"], "arch_id"])


@pytest.mark.slow
def test_sampling_is_deterministic(ran, tmp_path):
    wd = ran
    out = tmp_path / "again.parquet"
    workflow.run_sample("tiny", wd / "config/spaces/tiny.yaml", wd / "results/params/sample/tiny.json", out)
    a = read_table(wd / "results/samples/tiny.parquet")
    b = read_table(out)
    assert a["spec"].tolist() == b["spec"].tolist()


@pytest.mark.slow
def test_second_run_does_nothing(ran):
    assert planned_jobs(ran) == {}


@pytest.mark.slow
def test_audit_finds_stale_untraceable_and_inconsistent(ran, tmp_path):
    import pandas as pd

    from paretolm.artifacts import write_table

    wd = tmp_path / "copy"
    shutil.copytree(ran, wd, ignore=shutil.ignore_patterns(".snakemake"))
    cli = [sys.executable, "-m", "paretolm.cli", "audit", "results"]
    assert subprocess.run(cli, cwd=wd, capture_output=True, text=True).returncode == 0
    # untraceable: a table without provenance
    pd.DataFrame({"arch_id": ["x"]}).to_parquet(wd / "results/stray.parquet")
    # stale: the samples changed after the proxies were scored from them
    samples = read_table(wd / "results/samples/tiny.parquet")
    write_table(samples.iloc[:-1], wd / "results/samples/tiny.parquet",
                read_provenance(wd / "results/samples/tiny.parquet"))
    # inconsistent: a frontier that drops a non-dominated architecture
    front = read_table(wd / "results/pareto_cpu.parquet")
    front_prov = read_provenance(wd / "results/pareto_cpu.parquet")
    write_table(front.iloc[1:], wd / "results/pareto_cpu.parquet", front_prov)
    out = subprocess.run([*cli, "--json"], cwd=wd, capture_output=True, text=True)
    assert out.returncode == 1
    found = {(Path(f["path"]).name, f["kind"]) for f in json.loads(out.stdout)["findings"]}
    assert ("stray.parquet", "missing-provenance") in found
    assert ("tiny.parquet", "stale") in found  # proxies and profile of the changed samples
    assert ("tiny.parquet", "inconsistent") in found  # samples: 7 rows but sample.n=8
    assert ("pareto_cpu.parquet", "inconsistent") in found
    # a config edit makes the affected artifacts stale
    cfg = yaml.safe_load((wd / "config/config.yaml").read_text())
    cfg["search"]["iterations"] = 9
    (wd / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    text = subprocess.run(cli, cwd=wd, capture_output=True, text=True).stdout
    assert "config of stage 'search' changed since this was made (search.iterations)" in text


@pytest.mark.slow
def test_config_change_reruns_only_affected_stages(ran):
    wd = ran

    def plan(over: dict) -> set[str]:
        (wd / "override.yaml").write_text(yaml.safe_dump(over))
        return set(planned_jobs(wd, "--configfile", "config/config.yaml", "override.yaml"))

    assert plan({"search": {"iterations": 3}}) == {"search", "all"}
    assert plan({"hardware": {"cpu": {"resources": {"mem_mb": 123}}}}) == set()
    assert plan({"profile": {"warmup": 2}}) == {"profile", "search", "all"}
    assert plan({"proxies": {"names": ["decoder_params", "flops", "total_params", "embedding_params"]}}) == {
        "proxies", "profile", "search", "all"}
    assert plan({"sample": {"seed": 1}}) == {"sample", "proxies", "profile", "search", "all"}
    assert plan({}) == set()  # back to the original config: nothing to do

    # Really run one more iteration: only the search runs, and the first iterations repeat
    # exactly, because their measurements come from the cache.
    before = read_table(wd / "results/search/cpu/archive.parquet")
    (wd / "override.yaml").write_text(yaml.safe_dump({"search": {"iterations": 3}}))
    out = snakemake(wd, "--configfile", "config/config.yaml", "override.yaml")
    ran_jobs = set(re.findall(r"rule (\w+):", out.stdout + out.stderr))
    assert ran_jobs == {"search", "all"} or ran_jobs == {"search"}
    after = read_table(wd / "results/search/cpu/archive.parquet")
    old = after[after["iteration"] <= 2].reset_index(drop=True)
    assert old["arch_id"].tolist() == before["arch_id"].tolist()
    prov = read_provenance(wd / "results/search/cpu/archive.parquet")
    assert prov["measurements"]["measured"] == (after["iteration"] == 3).sum()


@pytest.mark.slow
def test_killed_profiling_resumes_without_remeasuring(tmp_path):
    n = 24
    wd = make_workdir(tmp_path, tiny_config(sample={"n": n}, profile={"min_repeats": 20, "max_repeats": 20}))
    cache = wd / "results/cache/measurements/cpu"
    target = "results/profile/cpu/tiny.parquet"
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "1", target], cwd=wd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 180
    try:
        while time.time() < deadline:
            if cache.exists() and len(list(cache.glob("*.json"))) >= 3:
                break
            time.sleep(0.02)
        else:
            pytest.fail("profiling never started")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = len(list(cache.glob("*.json")))
    assert 3 <= done < n, "the kill should land in the middle of the profile stage"
    assert not (wd / target).exists()
    snakemake(wd, "--unlock")
    snakemake(wd, "--rerun-incomplete", target)
    prov = read_provenance(wd / target)
    assert prov["measurements"]["cache_hits"] >= done
    assert prov["measurements"]["measured"] + prov["measurements"]["cache_hits"] == n
    assert len(list(cache.glob("*.json"))) == n


@pytest.mark.slow
def test_bad_config_key_stops_before_any_work(tmp_path):
    wd = make_workdir(tmp_path, tiny_config(search={"iteratoins": 3}))
    out = snakemake(wd, "-n", check=False)
    assert out.returncode != 0
    assert "iteratoins" in out.stdout + out.stderr
    assert not (wd / "results/samples").exists()


@pytest.mark.slow
def test_unavailable_target_fails_at_once(tmp_path):
    wd = make_workdir(tmp_path, tiny_config())
    out = snakemake(wd, "results/pareto_arm.parquet", check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "hardware target 'arm'" in text and "needs a" in text
    assert not (wd / "results/samples").exists()  # stopped before any job
    import torch

    if not torch.cuda.is_available():
        out = snakemake(wd, "results/pareto_cuda.parquet", check=False)
        assert out.returncode != 0 and "hardware target 'cuda': needs a CUDA GPU" in out.stdout + out.stderr


@pytest.mark.slow
def test_lint_is_clean(tmp_path):
    wd = make_workdir(tmp_path, tiny_config())
    out = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=wd, capture_output=True,
                         text=True, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert not [line for line in text.splitlines() if line.startswith("Lints for")], text


def test_workflow_files_present():
    # The Snakefile includes exactly the stage files that exist.
    text = (REPO / "Snakefile").read_text()
    for name in ("common", "sample", "proxies", "profile", "search"):
        assert f'include: "rules/{name}.smk"' in text
        assert (REPO / f"rules/{name}.smk").exists()
    assert json.loads(json.dumps(yaml.safe_load((REPO / "envs/paretolm.yaml").read_text())))["dependencies"]
