"""`paretolm audit`: the base config is always under the layers a user names, an empty folder is
not "all well", and impossible values are findings in every table that carries them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from paretolm import stages
from paretolm.config import load_config
from paretolm.core.artifacts import provenance, write_table
from paretolm.ops.audit import audit

ROOT = Path(__file__).resolve().parents[1]


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "paretolm.cli", "audit", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def project(tmp_path) -> Path:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / "workflow", tmp_path / "workflow")
    config = load_config(tmp_path / "config/config.yaml", root=tmp_path)
    part = stages.config_part("sample", config, space="gpt2_cpu_small")
    stages.stage("sample").run(
        part,
        space="gpt2_cpu_small",
        space_file=tmp_path / "config/spaces/gpt2_cpu_small.yaml",
        out=tmp_path / "results/samples/gpt2_cpu_small.parquet",
    )
    return tmp_path


def test_a_config_layer_is_merged_over_the_base_config(project) -> None:
    assert cli(project, "results").returncode == 0
    layer = project / "mine.yaml"
    layer.write_text("search:\n  seed: 3\n")  # nothing the samples depend on
    out = cli(project, "results", "--config", str(layer))
    assert out.returncode == 0, out.stdout + out.stderr
    layer.write_text("sample:\n  n: 30\n")
    out = cli(project, "results", "--config", str(layer))
    assert out.returncode == 1 and "sample.n" in out.stdout


def test_an_empty_results_folder_is_not_all_well(tmp_path) -> None:
    (tmp_path / "results").mkdir()
    out = cli(tmp_path, "results", "--config", "none")
    assert out.returncode == 1 and "no artifacts found" in out.stdout


@pytest.mark.parametrize(
    "column, value",
    [
        ("latency_ms", -1.0),
        ("latency_ms", np.nan),
        ("peak_memory_mb", np.inf),
        ("decoder_params", 0.0),
        ("latency_iqr_ms", -0.5),
    ],
)
def test_impossible_values_are_findings(tmp_path, column: str, value: float) -> None:
    table = pd.DataFrame(
        {
            "arch_id": ["a", "b"],
            "latency_ms": [1.0, 2.0],
            "latency_iqr_ms": [0.0, 0.1],
            "peak_memory_mb": [3.0, 4.0],
            "decoder_params": [10.0, 20.0],
        }
    )
    table.loc[1, column] = value
    write_table(table, tmp_path / "results/search/cpu/archive.parquet", provenance("other", {}))
    found = audit(tmp_path / "results", None, tmp_path)
    assert [(f.kind, column in f.message, "b:" in f.message) for f in found] == [("inconsistent", True, True)]


def test_missing_memory_is_fine_when_memory_was_off(tmp_path) -> None:
    table = pd.DataFrame({"arch_id": ["a"], "latency_ms": [1.0], "latency_iqr_ms": [0.1], "peak_memory_mb": [np.nan]})
    write_table(table, tmp_path / "results/profile/cpu/x.parquet", provenance("other", {"profile": {"memory": False}}))
    assert audit(tmp_path / "results", None, tmp_path) == []
    write_table(table, tmp_path / "results/profile/cpu/x.parquet", provenance("other", {"profile": {"memory": True}}))
    assert len(audit(tmp_path / "results", None, tmp_path)) == 1
