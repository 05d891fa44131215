"""Stage ``profile``: latency and peak memory of every sampled architecture on one hardware
target, with the proxy columns alongside."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..arch import ArchSpec
from ..artifacts import provenance, read_table, write_table
from ..config import measurement_settings

log = logging.getLogger(__name__)

NAME = "profile"
WILDCARDS = ("hardware", "space")


def config_part(config: Mapping[str, Any], **wildcards: str) -> dict[str, Any]:
    """The measurement settings of the target (the same for every space)."""
    return measurement_settings(config, wildcards["hardware"])


def run(part: Mapping[str, Any], *, hardware: str, space: str, samples: str | Path, proxies: str | Path,
        cache_dir: str | Path | None, out: str | Path) -> pd.DataFrame:
    """Measure every architecture in ``samples`` on ``hardware`` (measurements cached under
    ``cache_dir``) -> ``out``."""
    from ..profiling import Profiler, settings_from_params

    profiler = Profiler(hardware, settings_from_params(part), cache_dir)
    sample_df = read_table(samples)
    specs = [ArchSpec.from_json(s) for s in sample_df["spec"]]
    t0 = time.perf_counter()
    meas = profiler.table(specs)
    proxy_df = read_table(proxies)
    proxy_cols = [c for c in proxy_df.columns if c == "arch_id" or not c.endswith("_seconds")]
    df = meas.merge(proxy_df[proxy_cols], on="arch_id", how="left", validate="one_to_one")
    df.insert(1, "spec", sample_df["spec"].to_numpy())
    prov = provenance(NAME, part, [samples, proxies], wildcards={"hardware": hardware, "space": space},
                      measurements=profiler.counts(), measurement_key=profiler.key_hash,
                      seconds=time.perf_counter() - t0)
    write_table(df, out, prov)
    log.info("profiled %d architectures on %s: %s", len(df), hardware,
                                                 profiler.counts())
    return df
