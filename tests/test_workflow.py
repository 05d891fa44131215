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
from conftest import TINY_SPACES

from paretolm import config as configuration
from paretolm import stages
from paretolm.core import pareto
from paretolm.core.artifacts import canonical_hash, provenance, read_provenance, read_table, write_table
from paretolm.ops.audit import audit
from paretolm.stages import proxies as proxies_stage
from paretolm.stages import sample as sample_stage

REPO = Path(__file__).resolve().parents[1]

TINY_SPACE = TINY_SPACES["gpt2"]


def tiny_config(**overrides) -> dict:
    cfg = {
        "targets": ["cpu"],
        "sample": {"spaces": ["tiny"], "n": 8, "seed": 0},
        "proxies": {"names": ["decoder_params", "total_params", "flops"], "seq_len": 16},
        "profile": {"batch": 1, "seq_len": 16, "warmup": 1, "min_repeats": 10, "max_repeats": 12, "rel_iqr_max": 0.5},
        "hardware": {
            "cpu": {"device": "cpu", "threads": 1},
            "cuda": {"device": "cuda"},
            "arm": {"device": "cpu", "arch": "x86_64" if _machine() == "aarch64" else "aarch64"},
        },
        "search": {
            "space": "tiny",
            "seed": 0,
            "lts": {"iterations": 2, "population": 8, "parents": 3, "mutations": 3, "crossovers": 3},
        },
    }
    return configuration.merge(cfg, overrides)


# What the validation stages' config parts name (the files are read only when those stages run).
TRAINING_DATA = {
    "datasets": {
        "kjv": {
            "files": "$PARETOLM_DATA/corpora/kjv/kjv_verses.txt",
            "split": {"train": 0.9, "validation": 0.05, "test": 0.05},
        }
    },
    "tokenizers": {"kjv_bpe": {"type": "bpe", "vocab_size": 512, "train_on": "kjv"}},
    "train": {"dataset": "kjv", "tokenizer": "kjv_bpe"},
    "validation": {"sources": [{"kind": "frontier", "hardware": "cpu"}], "hardware": "cpu"},
}


def _machine() -> str:
    m = platform.machine().lower()
    return {"arm64": "aarch64", "amd64": "x86_64"}.get(m, m)


def make_workdir(path: Path, config: dict) -> Path:
    """A copy of the workflow (Snakefile, rules, scripts, schema, ...) with a tiny space and config."""
    shutil.copytree(REPO / "workflow", path / "workflow")
    (path / "config/spaces").mkdir(parents=True)
    (path / "config/spaces/tiny.yaml").write_text(yaml.safe_dump(TINY_SPACE))
    (path / "config/config.yaml").write_text(yaml.safe_dump(config))
    return path


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
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
    cfg = configuration.validate_config({}, REPO)
    assert cfg["search"]["lts"]["iterations"] == 30 and cfg["search"]["lts"]["population"] == 100
    assert cfg["hardware"]["cpu"]["threads"] == 1 and cfg["profile"]["seq_len"] == 192
    with pytest.raises(ValueError, match=r"^search\.iteratoins: unknown key"):
        configuration.validate_config({"search": {"iteratoins": 3}}, REPO)
    with pytest.raises(ValueError, match="profile.min_repeats"):
        configuration.validate_config({"profile": {"min_repeats": 5}}, REPO)
    with pytest.raises(ValueError, match="search.lts.parents"):
        configuration.validate_config({"search": {"lts": {"parents": 50, "population": 10}}}, REPO)
    with pytest.raises(ValueError, match="hardware.gpu.device"):
        configuration.validate_config({"hardware": {"gpu": {"device": "tpu"}}}, REPO)
    with pytest.raises(ValueError, match="search.method: unknown method 'nope'"):
        configuration.validate_config({"search": {"method": "nope"}}, REPO)
    # defaults of nested maps come from the schema too
    cfg = configuration.validate_config({"hardware": {"gpu": {"device": "cuda"}}, "targets": ["gpu"]}, REPO)
    assert cfg["hardware"]["gpu"]["slurm"] == {"partition": None, "constraint": None, "gres": None}
    assert cfg["proxies"]["settings"]["merino_entropy"]["method"] == "mp"


def test_shipped_configs_validate():
    base = configuration.load_config(REPO / "config/config.yaml", root=REPO)
    assert base["targets"] == ["cpu"] and base["search"]["space"] == "gpt2_cpu_small"
    for preset in ("lts-gpt2", "lts-transformer-xl"):
        with open(REPO / f"config/presets/{preset}.yaml") as fh:
            over = yaml.safe_load(fh)
        cfg = configuration.load_config(REPO / "config/config.yaml", over, root=REPO)
        s = cfg["search"]["lts"]
        assert (
            s["iterations"],
            s["population"],
            s["parents"],
            s["mutations"],
            s["mutation_prob"],
            s["crossovers"],
        ) == (30, 100, 20, 40, 0.3, 40)
        assert (cfg["profile"]["batch"], cfg["profile"]["seq_len"]) == (1, 192)


def test_stage_parts_separate_what_matters(tmp_path):
    (tmp_path / "config/spaces").mkdir(parents=True)
    (tmp_path / "config/spaces/tiny.yaml").write_text(yaml.safe_dump(TINY_SPACE))
    cfg = configuration.validate_config(tiny_config(spaces_dir=str(tmp_path / "config/spaces"), **TRAINING_DATA), REPO)
    part = lambda c, stage, **wc: stages.config_part(stage, c, **wc)  # noqa: E731
    routing = {"resources": {"mem_mb": 1}, "slurm": {"partition": "x"}}
    routed = configuration.merge(cfg, {"hardware": {"cpu": routing}, "profile": {"cache": "elsewhere"}})
    assert part(routed, "profile", hardware="cpu") == part(cfg, "profile", hardware="cpu")
    searched = configuration.merge(cfg, {"search": {"lts": {"iterations": 5}}})
    assert part(searched, "profile", hardware="cpu") == part(cfg, "profile", hardware="cpu")
    assert part(searched, "search", hardware="cpu") != part(cfg, "search", hardware="cpu")
    assert part(searched, "sample", space="tiny") == part(cfg, "sample", space="tiny")
    other_hw = configuration.merge(cfg, {"hardware": {"cuda": {"threads": 8}}})
    assert part(other_hw, "profile", hardware="cpu") == part(cfg, "profile", hardware="cpu")
    # the validation half: routing keys of training change nothing, evaluation settings only
    # evaluation and correlation, the training data everything
    for stage in ("select", "train", "evaluate", "correlate"):
        assert part(configuration.merge(cfg, {"train": {"mem_mb": 1, "runtime": 2}}), stage) == part(cfg, stage)
    evaluated = configuration.merge(cfg, {"evaluate": {"max_tokens": 100}})
    assert [part(evaluated, s) != part(cfg, s) for s in ("select", "train", "evaluate", "correlate")] == [
        False,
        False,
        True,
        False,
    ]
    retrained = configuration.merge(cfg, {"train": {"steps": 7}})
    assert all(part(retrained, s) != part(cfg, s) for s in ("select", "train", "evaluate", "correlate"))


def validated_tiny(tmp_path: Path, **overrides) -> dict:
    """``tiny_config`` validated, its space file written where the config says (every space file
    is read when the config is checked)."""
    (tmp_path / "spaces").mkdir(exist_ok=True)
    (tmp_path / "spaces/tiny.yaml").write_text(yaml.safe_dump(TINY_SPACE))
    return configuration.validate_config(tiny_config(spaces_dir=str(tmp_path / "spaces"), **overrides), REPO)


def test_config_parts_are_canonical(tmp_path):
    # Snakemake compares the repr of a param across runs: key order must not matter
    cfg = validated_tiny(tmp_path)
    shuffled = json.loads(json.dumps(cfg))
    shuffled["profile"] = dict(reversed(list(shuffled["profile"].items())))
    shuffled["hardware"]["cpu"] = dict(reversed(list(shuffled["hardware"]["cpu"].items())))
    a = stages.config_part("profile", cfg, hardware="cpu", space="tiny")
    b = stages.config_part("profile", shuffled, hardware="cpu", space="tiny")
    assert repr(a) == repr(b)
    # wildcards a stage does not declare are ignored, unknown stages name the known ones
    assert stages.config_part("proxies", cfg, space="tiny", hardware="x") == stages.config_part(
        "proxies", cfg, space="tiny"
    )
    with pytest.raises(ValueError, match="unknown stage 'nope'.*correlate, evaluate, export, profile, proxies"):
        stages.config_part("nope", cfg)


def test_stage_table_is_in_dag_order_and_matches_the_rules():
    assert list(stages.STAGES) == [
        "sample",
        "supernet",
        "proxies",
        "profile",
        "search",
        "select",
        "train",
        "evaluate",
        "correlate",
        "export",
    ]
    rules = (REPO / "workflow/rules").glob("*.smk")
    assert sorted(p.stem for p in rules) == sorted([*stages.STAGES, "common"])
    text = (REPO / "workflow/Snakefile").read_text()
    for name in ["common", *stages.STAGES]:
        assert f'include: "rules/{name}.smk"' in text
    for name in stages.STAGES:
        if name == "search":
            continue  # written separately; same interface
        module = stages.STAGES[name]
        assert module.NAME == name and isinstance(module.WILDCARDS, tuple)
        rule = (REPO / f"workflow/rules/{name}.smk").read_text()
        assert f'config_part("{name}")' in rule


def test_proxy_data_block_is_self_contained(tmp_path):
    from paretolm.proxies import Scorer

    cfg = validated_tiny(tmp_path)
    assert Scorer.from_part(proxies_stage.section(cfg)).batch is None
    with pytest.raises(ValueError, match=r"proxies.data: proxies \['synflow'\] need a token batch"):
        Scorer.from_part({**proxies_stage.section(cfg), "names": ["decoder_params", "synflow"]})
    data = configuration.merge(
        cfg,
        {
            "proxies": {"data": {"dataset": "shakespeare", "tokenizer": "gpt2"}},
            "datasets": {"shakespeare": {"files": "a.txt"}},
        },
    )
    part = proxies_stage.section(data)["data"]
    assert part["datasets"] == {"shakespeare": {"files": "a.txt"}} and part["tokenizers"] == {}
    edited = configuration.merge(data, {"datasets": {"shakespeare": {"files": "b.txt"}}})
    assert canonical_hash(proxies_stage.section(edited)) != canonical_hash(proxies_stage.section(data))


def test_audit_reports_stale_validation_artifacts(tmp_path):
    import pandas as pd

    cfg = validated_tiny(tmp_path, **TRAINING_DATA)
    results = tmp_path / "results"
    for stage, path, wildcards in (
        ("evaluate", "eval/a1.parquet", {"arch_id": "a1"}),
        ("correlate", "correlation.parquet", {}),
    ):
        part = stages.config_part(stage, cfg, **wildcards)
        write_table(pd.DataFrame({"arch_id": ["a1"]}), results / path, provenance(stage, part, [], wildcards=wildcards))
    assert audit(results, cfg, tmp_path) == []
    edited = configuration.merge(cfg, {"evaluate": {"max_tokens": 100}})
    found = audit(results, edited, tmp_path)
    assert [(Path(f.path).name, f.kind) for f in found] == [("a1.parquet", "stale")]
    assert "config of stage 'evaluate' changed since this was made (evaluate.max_tokens)" in found[0].message


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
    assert [len(h) for h in samples["n_head"]] == samples["n_layer"].tolist()  # per-layer list column
    proxies = read_table(wd / "results/proxies/tiny.parquet")
    assert {"decoder_params", "decoder_params_seconds", "total_params", "flops"} <= set(proxies.columns)
    prof = read_table(wd / "results/profile/cpu/tiny.parquet")
    measured = {"arch_id", "latency_ms", "latency_iqr_ms", "peak_memory_mb"}
    assert measured | {"decoder_params"} <= set(prof.columns)
    assert (prof["latency_ms"] > 0).all() and (prof["repeats"] >= 10).all()
    assert (prof["peak_memory_mb"] > prof["weights_mb"]).all()
    archive = read_table(wd / "results/search/lts/cpu/archive.parquet")
    front = read_table(wd / "results/pareto_cpu.parquet")
    assert measured | {"spec", "decoder_params"} <= set(front.columns)
    assert set(archive["iteration"]) == {0, 1, 2}
    for path in ("samples/tiny", "proxies/tiny", "profile/cpu/tiny", "search/lts/cpu/archive", "pareto_cpu"):
        prov = read_provenance(wd / f"results/{path}.parquet")
        assert prov and {"config_hash", "code", "libraries", "hardware", "inputs"} <= set(prov)
        assert prov["libraries"]["torch"] and prov["inputs"]
    assert (wd / "results/pareto_cpu.png").stat().st_size > 10_000
    assert (wd / "logs/profile/cpu/tiny.log").read_text().count("INFO paretolm.hardware.profiling: measured ") == 8
    cwd = os.getcwd()
    os.chdir(wd)  # the config's paths are relative to the working directory
    try:
        cfg = configuration.load_config(wd / "config/config.yaml", root=wd)
        assert read_provenance(wd / "results/profile/cpu/tiny.parquet")["config_hash"] == canonical_hash(
            stages.config_part("profile", cfg, hardware="cpu", space="tiny")
        )
        assert audit("results", cfg) == []
    finally:
        os.chdir(cwd)


@pytest.mark.slow
def test_frontier_is_non_dominated_set_of_archive(ran):
    archive = read_table(ran / "results/search/lts/cpu/archive.parquet")
    front = read_table(ran / "results/pareto_cpu.parquet")
    objectives = {"decoder_params": "max", "latency_ms": "min", "peak_memory_mb": "min"}
    assert set(front["arch_id"]) == set(pareto.pareto_front(archive, objectives)["arch_id"])
    assert set(front["arch_id"]) == set(archive.loc[archive["on_front"], "arch_id"])


@pytest.mark.slow
def test_sampling_is_deterministic(ran, tmp_path):
    wd = ran
    out = tmp_path / "again.parquet"
    part = read_provenance(wd / "results/samples/tiny.parquet")["config"]
    sample_stage.run(part, space="tiny", space_file=wd / "config/spaces/tiny.yaml", out=out)
    a = read_table(wd / "results/samples/tiny.parquet")
    b = read_table(out)
    assert a["spec"].tolist() == b["spec"].tolist()


@pytest.mark.slow
def test_second_run_does_nothing(ran):
    assert planned_jobs(ran) == {}
    assert not (ran / "results/params").exists()  # the config parts are params: no files for them


@pytest.mark.slow
def test_audit_finds_stale_untraceable_and_inconsistent(ran, tmp_path):
    import pandas as pd

    from paretolm.core.artifacts import write_table

    wd = tmp_path / "copy"
    shutil.copytree(ran, wd, ignore=shutil.ignore_patterns(".snakemake"))
    cli = [sys.executable, "-m", "paretolm.cli", "audit", "results"]
    assert subprocess.run(cli, cwd=wd, capture_output=True, text=True).returncode == 0
    # untraceable: a table without provenance
    pd.DataFrame({"arch_id": ["x"]}).to_parquet(wd / "results/stray.parquet")
    # stale: the samples changed after the proxies were scored from them
    samples = read_table(wd / "results/samples/tiny.parquet")
    write_table(
        samples.iloc[:-1], wd / "results/samples/tiny.parquet", read_provenance(wd / "results/samples/tiny.parquet")
    )
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
    cfg["search"]["lts"]["iterations"] = 9
    (wd / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    text = subprocess.run(cli, cwd=wd, capture_output=True, text=True).stdout
    assert "config of stage 'search' changed since this was made (search.lts.iterations)" in text


@pytest.mark.slow
def test_config_change_reruns_only_affected_stages(ran):
    wd = ran

    def plan(over: dict) -> set[str]:
        (wd / "override.yaml").write_text(yaml.safe_dump(over))
        return set(planned_jobs(wd, "--configfile", "config/config.yaml", "override.yaml"))

    assert plan({"search": {"lts": {"iterations": 3}}}) == {"search", "pareto", "all"}
    assert plan({"hardware": {"cpu": {"resources": {"mem_mb": 123}}}}) == set()
    assert plan({"profile": {"warmup": 2}}) == {"profile", "search", "pareto", "all"}
    assert plan({"proxies": {"names": ["decoder_params", "flops", "total_params", "embedding_params"]}}) == {
        "proxies",
        "profile",
        "search",
        "pareto",
        "all",
    }
    assert plan({"sample": {"seed": 1}}) == {"sample", "proxies", "profile", "search", "pareto", "all"}
    assert plan({}) == set()  # back to the original config: nothing to do

    # Really run one more iteration: only the search runs, and the first iterations repeat
    # exactly, because their measurements come from the cache.
    before = read_table(wd / "results/search/lts/cpu/archive.parquet")
    (wd / "override.yaml").write_text(yaml.safe_dump({"search": {"lts": {"iterations": 3}}}))
    out = snakemake(wd, "--configfile", "config/config.yaml", "override.yaml")
    ran_jobs = set(re.findall(r"rule (\w+):", out.stdout + out.stderr))
    assert ran_jobs <= {"search", "pareto", "all"} and "search" in ran_jobs
    after = read_table(wd / "results/search/lts/cpu/archive.parquet")
    old = after[after["iteration"] <= 2].reset_index(drop=True)
    assert old["arch_id"].tolist() == before["arch_id"].tolist()
    prov = read_provenance(wd / "results/search/lts/cpu/archive.parquet")
    assert prov["measurements"]["measured"] == (after["iteration"] == 3).sum()


@pytest.mark.slow
def test_killed_profiling_resumes_without_remeasuring(tmp_path):
    n = 24
    wd = make_workdir(tmp_path, tiny_config(sample={"n": n}, profile={"min_repeats": 20, "max_repeats": 20}))
    cache = wd / "results/cache/measurements/cpu"
    target = "results/profile/cpu/tiny.parquet"
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1", target],
        cwd=wd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
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
def test_lint_and_format_are_clean(tmp_path):
    # as CI runs them: the tiny config of .test, and snakefmt over the workflow folder
    for name in ("workflow", "config", ".test"):
        shutil.copytree(REPO / name, tmp_path / name)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for args in (["--lint"], ["-n"], ["-n", "validation"]):
        out = subprocess.run(
            [sys.executable, "-m", "snakemake", "--directory", ".test", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        text = out.stdout + out.stderr
        assert out.returncode == 0, text
        assert not [line for line in text.splitlines() if line.startswith("Lints for")], text
    assert not (tmp_path / ".test/results").exists()  # neither lint nor a dry run writes results
    snakefmt = Path(sys.executable).with_name("snakefmt")
    out = subprocess.run(
        [str(snakefmt) if snakefmt.exists() else "snakefmt", "--check", "workflow"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
