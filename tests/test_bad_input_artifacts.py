"""A damaged Parquet artifact is named when read, and the workflow rebuilds it before any stage
reads it; nothing valid is lost."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from test_workflow import make_workdir, snakemake, tiny_config

from paretolm.core.artifacts import mark_damaged, provenance, read_table, write_table


def _damage(path) -> None:
    stat = path.stat()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    os.utime(path, (stat.st_atime, stat.st_mtime))  # as if the disk broke it: the time stamp stays


def test_reading_a_damaged_table_names_it(tmp_path) -> None:
    path = tmp_path / "results" / "profile" / "t.parquet"
    write_table(pd.DataFrame({"a": [1, 2]}), path, provenance("test", {}))
    good = tmp_path / "results" / "samples" / "s.parquet"
    write_table(pd.DataFrame({"a": [1]}), good, provenance("test", {}))
    cached = tmp_path / "results" / "cache" / "c.parquet"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not parquet")
    _damage(path)
    with pytest.raises(ValueError, match=rf"^{path}: damaged Parquet file .* run snakemake again"):
        read_table(path)
    marked = mark_damaged(tmp_path / "results")
    assert [p for p, _ in marked] == [path] and path.stat().st_mtime == 0
    assert good.stat().st_mtime > 0 and cached.read_bytes() == b"not parquet"  # caches are not artifacts


@pytest.mark.slow
def test_workflow_rebuilds_a_damaged_intermediate(tmp_path) -> None:
    workdir = make_workdir(tmp_path, tiny_config())
    snakemake(workdir, "results/pareto_cpu.parquet")
    frontier = read_table(workdir / "results/pareto_cpu.parquet")
    profile = workdir / "results/profile/cpu/tiny.parquet"
    _damage(profile)
    run = snakemake(workdir, "results/pareto_cpu.parquet")
    assert "tiny.parquet: damaged" in run.stdout + run.stderr
    pd.testing.assert_frame_equal(read_table(workdir / "results/pareto_cpu.parquet"), frontier)  # same cache
    assert len(read_table(profile)) == 8
