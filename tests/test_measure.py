"""Measuring on the device: `paretolm measure` with the core install only, the import source
(refusals, missing architectures and the command that measures them), and an import target run
through the workflow."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
from test_workflow import REPO, make_workdir, snakemake
from test_workflow import tiny_config as _tiny_config

from paretolm import config as configuration
from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import hardware_fingerprint, provenance, read_provenance, read_table, write_table
from paretolm.hardware.profiling import Settings, _machine
from paretolm.hardware.sources import MissingMeasurements, check_target, source_for, target_source
from paretolm.hardware.sources.imported import ImportSource

# Installed at interpreter start (sitecustomize): importing a workflow extra fails, and the attempt
# is written to $BLOCKED_LOG, so a caught ImportError cannot hide it either.
SITECUSTOMIZE = """
import importlib.abc, os, sys

EXTRAS = {"snakemake", "lm_eval", "datasets", "accelerate", "matplotlib"}

class BlockWorkflowExtras(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in EXTRAS:
            with open(os.environ["BLOCKED_LOG"], "a") as fh:
                fh.write(name + "\\n")
            raise ImportError(f"{name}: not installed (core install)")
        return None

sys.meta_path.insert(0, BlockWorkflowExtras())
"""


def tiny_config(**overrides) -> dict:
    """The workflow tests' tiny config, with the validation half's dataset and tokenizer names that
    the config check resolves before any job (these tests never train)."""
    names = {
        "datasets": {"kjv": {"files": "kjv.txt", "split": {"train": 0.9, "validation": 0.1}}},
        "tokenizers": {"kjv_bpe": {"type": "word", "vocab_size": 64, "train_on": "kjv"}},
    }
    return configuration.merge(configuration.merge(names, _tiny_config()), overrides)


def with_iterations(cfg: dict, n: int) -> dict:
    """``cfg`` with the search's iterations set to ``n``, where the tiny config keeps them."""
    search = cfg["search"]
    block = search if "iterations" in search else search.setdefault(search.get("method", "lts"), {})
    block["iterations"] = n
    return cfg


def core_env(tmp_path: Path) -> dict[str, str]:
    """Environment of a process that behaves like a core install: the workflow extras cannot be imported."""
    hook = tmp_path / "core-site"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {**os.environ, "PYTHONPATH": str(hook), "BLOCKED_LOG": str(tmp_path / "blocked.log"), "OMP_NUM_THREADS": "1"}


def paretolm_cmd(command: str) -> list[str]:
    """A printed `paretolm ...` command line, run with this interpreter."""
    args = shlex.split(command)
    assert args[0] == "paretolm"
    return [sys.executable, "-m", "paretolm.cli", *args[1:]]


def blocked(tmp_path: Path) -> list[str]:
    log = tmp_path / "blocked.log"
    return log.read_text().split() if log.exists() else []


# -- fast: the import source ----------------------------------------------------------------------
SETTINGS = Settings(seq_len=16, warmup=1, min_repeats=10, max_repeats=10)
SPECS = [
    ArchSpec("gpt2", n_layer=1, d_model=32 * k, n_head=[1], d_inner=[64], vocab_size=512, max_seq_len=64)
    for k in (1, 2, 3)
]


def measured_file(path: Path, specs=SPECS, settings=SETTINGS, device=None) -> Path:
    """A table as `paretolm measure` writes it, with made-up numbers."""
    device = device or hardware_fingerprint()
    df = pd.DataFrame(
        [
            {
                "arch_id": s.arch_id,
                "spec": s.to_json(),
                "latency_ms": 1.0 + i,
                "latency_iqr_ms": 0.1,
                "peak_memory_mb": 2.0,
            }
            for i, s in enumerate(specs)
        ]
    )
    return write_table(
        df, path, provenance("measure", {}, [], settings=settings.to_dict(), device=device, device_torch="2.x")
    )


def test_import_source_reads_and_refuses(tmp_path):
    folder = tmp_path / "board"
    measured_file(folder / "a.parquet", SPECS[:2])
    measured_file(folder / "b.parquet", SPECS[2:])
    target = {"device": "cpu", "source": "import"}
    src = ImportSource("board", target, SETTINGS, folder)
    assert [src(s)["latency_ms"] for s in SPECS] == [1.0, 2.0, 1.0]
    assert src.counts()["imported"] == 3 and src.provenance()["source"] == "import"
    assert src.provenance()["device"] == hardware_fingerprint()

    # an architecture nobody measured: named, with the command that measures it
    other = SPECS[0].with_(d_model=128)
    with pytest.raises(MissingMeasurements, match=other.arch_id) as e:
        src.require([*SPECS, other], "results/samples/tiny.parquet")
    assert (
        "paretolm measure --archs results/samples/tiny.parquet --hardware board --config config/config.yaml "
        "--out tiny.parquet"
    ) in str(e.value)
    with pytest.raises(MissingMeasurements, match="can only use architectures measured on the device"):
        src(other)

    def refused(match: str, **kw) -> None:
        bad = tmp_path / "bad"
        shutil.rmtree(bad, ignore_errors=True)
        shutil.copytree(folder, bad)
        kw.pop("write", lambda: None)()
        with pytest.raises(ValueError, match=match):
            ImportSource("board", kw.get("target", target), SETTINGS, bad)

    other_settings = Settings(seq_len=16, warmup=2, min_repeats=10, max_repeats=10)
    refused(
        r"refusing .*c.parquet: measured with other settings: warmup=2 \(target: 1\)",
        write=lambda: measured_file(tmp_path / "bad/c.parquet", settings=other_settings),
    )
    refused(
        r"refusing .*c.parquet: measured on another machine",
        write=lambda: measured_file(tmp_path / "bad/c.parquet", device={**hardware_fingerprint(), "cpu": "x"}),
    )
    refused(
        r"refusing .*c.parquet: it was not written by `paretolm measure`",
        write=lambda: pd.DataFrame({"arch_id": ["x"]}).to_parquet(tmp_path / "bad/c.parquet"),
    )
    foreign = "x86_64" if _machine() == "aarch64" else "aarch64"
    refused(f"needs {foreign}", target={**target, "arch": foreign})
    refused("the target pins 'Cortex-A76'", target={**target, "fingerprint": {"cpu": "Cortex-A76"}})


def test_source_keys_are_checked_and_leave_old_parts_alone(tmp_path):
    assert target_source("b", {"device": "cpu"}) == "local"
    assert target_source("b", {"device": "cpu", "remote": {"url": "http://127.0.0.1:1"}}) == "remote"
    assert target_source("b", {"device": "cpu", "import_dir": "m"}) == "import"
    with pytest.raises(ValueError, match="hardware.b.remote: a source: remote target needs remote.url"):
        target_source("b", {"device": "cpu", "source": "remote"})
    with pytest.raises(ValueError, match="hardware.b.import_dir: only used by source: import"):
        target_source("b", {"device": "cpu", "source": "local", "import_dir": "m"})
    # configs without the new keys keep their config parts; shards never change a measurement
    cfg = {"hardware": {"cpu": {"device": "cpu"}}, "profile": {"seq_len": 16, "cache": "c", "shards": 1}}
    sharded = configuration.merge(cfg, {"profile": {"shards": 4, "cache": "elsewhere"}})
    assert configuration.measurement_settings(sharded, "cpu") == {
        "hardware": {"device": "cpu"},
        "profile": {"seq_len": 16},
    }
    hardware = configuration.load_schema(REPO)["properties"]["hardware"]
    jsonschema.validate({"b": {"device": "cpu", "remote": {"url": "http://127.0.0.1:8750"}}}, hardware)
    with pytest.raises(jsonschema.ValidationError, match="ftp://x"):
        jsonschema.validate({"b": {"device": "cpu", "remote": {"url": "ftp://x"}}}, hardware)
    # a board this machine is not: refused for local measurement, fine to import or ask remotely
    foreign = {"device": "cpu", "arch": "x86_64" if _machine() == "aarch64" else "aarch64"}
    with pytest.raises(ValueError, match="needs a"):
        check_target("arm", foreign)
    check_target("arm", {**foreign, "source": "import"})
    with pytest.raises(ValueError, match="needs the server's token in the environment variable NOPE_TOKEN"):
        check_target("arm", {**foreign, "remote": {"url": "http://127.0.0.1:1", "token_env": "NOPE_TOKEN"}})
    # the stages get an import target's numbers without measuring
    folder = tmp_path / "measurements/arm"
    part = {
        "hardware": {**foreign, "source": "import", "import_dir": str(folder)},
        "profile": {"seq_len": 16, "warmup": 1, "min_repeats": 10, "max_repeats": 10},
    }
    settings = Settings.from_parts(part["hardware"], part["profile"])
    board = {**hardware_fingerprint(), "machine": foreign["arch"]}
    measured_file(folder / "a.parquet", settings=settings, device=board)
    assert source_for("arm", part, None)(SPECS[0])["latency_ms"] == 1.0


# -- slow: on the device, and through the workflow --------------------------------------------------
@pytest.mark.slow
def test_measure_runs_on_a_core_install_and_resumes_after_a_kill(tmp_path):
    board = make_workdir(
        tmp_path / "board",
        tiny_config(
            hardware={"board": {"device": "cpu", "threads": 1}}, profile={"min_repeats": 20, "max_repeats": 20}
        ),
    )
    shutil.rmtree(board / "workflow")  # the device has the config, not the workflow
    specs = [SPECS[0].with_(d_model=32 * k, d_inner=[64 * k]) for k in range(1, 7)]
    (board / "archs.jsonl").write_text("".join(s.to_json() + "\n" for s in specs))
    cmd = [
        sys.executable,
        "-m",
        "paretolm.cli",
        "measure",
        "--archs",
        "archs.jsonl",
        "--hardware",
        "board",
        "--out",
        "board.parquet",
    ]
    env = core_env(tmp_path)
    cache = board / "results/cache/measurements/board"
    proc = subprocess.Popen(
        cmd, cwd=board, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 120
    try:
        while len(list(cache.glob("*.json"))) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = len(list(cache.glob("*.json")))
    assert 2 <= done < len(specs) and not (board / "board.parquet").exists()
    out = subprocess.run(cmd, cwd=board, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert blocked(tmp_path) == []
    df = read_table(board / "board.parquet")
    prov = read_provenance(board / "board.parquet")
    assert df["arch_id"].tolist() == [s.arch_id for s in specs] and (df["latency_ms"] > 0).all()
    assert prov["stage"] == "measure" and prov["device"] == hardware_fingerprint()
    assert prov["measurements"]["cache_hits"] >= done
    assert prov["measurements"]["measured"] + prov["measurements"]["cache_hits"] == len(specs)


@pytest.mark.slow
def test_import_target_through_the_workflow(tmp_path):
    foreign = "x86_64" if _machine() == "aarch64" else "aarch64"
    cfg = with_iterations(
        tiny_config(
            hardware={
                "board": {"device": "cpu", "threads": 1, "source": "import"},
                "arm_board": {"device": "cpu", "arch": foreign, "source": "import"},
            },
            targets=["board"],
        ),
        0,
    )
    wd = make_workdir(tmp_path / "laptop", cfg)

    # 1. nothing measured yet: the profile jobs (not the check of this machine's CPU) stop, naming
    #    the missing architectures and the command that measures them on the device
    out = snakemake(wd, "-k", "results/pareto_board.parquet", "results/profile/arm_board/tiny.parquet", check=False)
    assert out.returncode != 0 and "needs a" not in out.stdout + out.stderr
    for hw in ("board", "arm_board"):
        log = (wd / f"logs/profile/{hw}/tiny.log").read_text()
        assert "8 architecture(s) not measured on the device yet" in log
    command = next(
        line.strip()
        for line in (wd / "logs/profile/board/tiny.log").read_text().splitlines()
        if line.strip().startswith("paretolm measure ")
    )

    # 2. on the device (core install): the config and the samples, then the printed command
    board = tmp_path / "board"
    shutil.copytree(wd / "config", board / "config")
    shutil.copytree(wd / "results/samples", board / "results/samples")
    run = subprocess.run(
        paretolm_cmd(command), cwd=board, env=core_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert blocked(tmp_path) == []

    # 3. back home: the file goes into the import folder and the workflow finishes without measuring
    (wd / "measurements/board").mkdir(parents=True)
    shutil.copy(board / "tiny.parquet", wd / "measurements/board/tiny.parquet")
    snakemake(wd, "results/pareto_board.parquet")
    prof = read_table(wd / "results/profile/board/tiny.parquet")
    prov = read_provenance(wd / "results/profile/board/tiny.parquet")
    assert prov["source"] == "import" and prov["measurements"]["imported"] == 8
    assert prov["measurements"]["measured"] == 0 and not (wd / "results/cache/measurements/board").exists()
    imported = read_table(board / "tiny.parquet").set_index("arch_id")
    assert prof.set_index("arch_id")["latency_ms"].equals(imported.loc[prof["arch_id"], "latency_ms"])
    assert len(read_table(wd / "results/pareto_board.parquet")) >= 1
