"""The profile stage split into shards (profile.shards): one job per shard, gathered into the
table an unsharded run writes, equal to it given the measurement cache."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from test_measure import tiny_config
from test_workflow import make_workdir, snakemake

from paretolm.core.artifacts import read_provenance, read_table
from paretolm.stages import profile

TARGET = "results/profile/cpu/tiny.parquet"


@pytest.mark.slow
def test_sharded_profile_equals_the_unsharded_one(tmp_path):
    wd = make_workdir(tmp_path, tiny_config(sample={"n": 5}, profile={"shards": 2}))
    out = snakemake(wd, TARGET)
    jobs = re.findall(r"rule (\w+):", out.stdout + out.stderr)
    assert jobs.count("profile_shard") == 2 and jobs.count("profile") == 1
    sharded = read_table(wd / TARGET)
    prov = read_provenance(wd / TARGET)
    assert prov["shards"] == 2 and prov["measurements"]["measured"] == 5
    samples = read_table(wd / "results/samples/tiny.parquet")["arch_id"].tolist()
    for k in (1, 2):  # shard k measures samples k-1, k-1+2, ...
        shard = read_table(wd / f"results/profile/cpu/shards/tiny.{k}of2.parquet")
        assert shard["arch_id"].tolist() == samples[k - 1 :: 2]

    # the same target unsharded: every number comes from the cache, and the table is the same
    unsharded = profile.run(
        prov["config"],
        hardware="cpu",
        space="tiny",
        samples=wd / "results/samples/tiny.parquet",
        proxies=wd / "results/proxies/tiny.parquet",
        cache_dir=wd / "results/cache/measurements",
        out=tmp_path / "unsharded.parquet",
    )
    again = read_provenance(tmp_path / "unsharded.parquet")
    assert again["measurements"]["measured"] == 0 and again["measurements"]["cache_hits"] == 5
    pd.testing.assert_frame_equal(unsharded, sharded)
    assert again["config_hash"] == prov["config_hash"]  # the number of shards is no measurement setting
