"""Stage ``profile``: latency and peak memory of every sampled architecture on one hardware
target, with the proxy columns alongside.

The target's source (``paretolm.hardware.sources``) measures here, imports what the device measured,
or asks a measurement server on the device. With ``profile.shards`` above 1 the work is split:
``run_shard`` measures every n-th sample in a job of its own (a cluster runs them on as many nodes
at once) and ``run`` gathers the shards, in the samples' order, into the same table an unsharded
run writes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from paretolm.config import measurement_settings
from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import provenance, read_provenance, read_table, write_table
from paretolm.hardware.sources import source_for

log = logging.getLogger(__name__)

NAME = "profile"
WILDCARDS = ("hardware", "space")
SHARD_STAGE = "profile_shard"


def config_part(config: Mapping[str, Any], **wildcards: str) -> dict[str, Any]:
    """The measurement settings of the target (the same for every space)."""
    return measurement_settings(config, wildcards["hardware"])


def _measure(
    part: Mapping[str, Any],
    hardware: str,
    samples: str | Path,
    cache_dir: str | Path | None,
    shard: int = 1,
    shards: int = 1,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Measurements of samples ``shard - 1``, ``shard - 1 + shards``, ... and the source's provenance."""
    source = source_for(hardware, part, cache_dir)
    specs = [ArchSpec.from_json(s) for s in read_table(samples)["spec"]][shard - 1 :: shards]
    source.require(specs, samples)
    meas = pd.DataFrame([source(spec) for spec in specs])
    return meas, source.provenance()


def run(
    part: Mapping[str, Any],
    *,
    hardware: str,
    space: str,
    samples: str | Path,
    proxies: str | Path,
    cache_dir: str | Path | None,
    out: str | Path,
    shards: Sequence[str | Path] = (),
) -> pd.DataFrame:
    """Measure every architecture in ``samples`` on ``hardware`` (measurements cached under
    ``cache_dir``), or gather the ``shards`` that did, -> ``out`` with the proxies alongside."""
    t0 = time.perf_counter()
    sample_df = read_table(samples)
    if shards:
        meas, source_prov = _gather(shards, sample_df["arch_id"])
    else:
        meas, source_prov = _measure(part, hardware, samples, cache_dir)
    proxy_df = read_table(proxies)
    proxy_cols = [c for c in proxy_df.columns if c == "arch_id" or not c.endswith("_seconds")]
    df = meas.merge(proxy_df[proxy_cols], on="arch_id", how="left", validate="one_to_one")
    df.insert(1, "spec", sample_df["spec"].to_numpy())
    prov = provenance(
        NAME,
        part,
        [samples, proxies, *shards],
        wildcards={"hardware": hardware, "space": space},
        seconds=time.perf_counter() - t0,
        **source_prov,
    )
    write_table(df, out, prov)
    log.info(
        "profiled %d architectures on %s (%s): %s",
        len(df),
        hardware,
        source_prov["source"],
        source_prov["measurements"],
    )
    return df


def run_shard(
    part: Mapping[str, Any],
    *,
    hardware: str,
    space: str,
    samples: str | Path,
    cache_dir: str | Path | None,
    shard: int,
    shards: int,
    out: str | Path,
) -> pd.DataFrame:
    """Measure shard ``shard`` of ``shards`` (1-based: samples ``shard - 1``, ``shard - 1 + shards``,
    ...) -> ``out``: the measurement columns only, gathered by ``run``."""
    if not 1 <= shard <= shards:
        raise ValueError(f"profile shard {shard} of {shards}: expected 1 <= shard <= shards")
    t0 = time.perf_counter()
    meas, source_prov = _measure(part, hardware, samples, cache_dir, shard, shards)
    prov = provenance(
        SHARD_STAGE,
        part,
        [samples],
        wildcards={"hardware": hardware, "space": space},
        shard=[shard, shards],
        seconds=time.perf_counter() - t0,
        **source_prov,
    )
    write_table(meas, out, prov)
    log.info(
        "profiled shard %d of %d (%d architectures) on %s: %s",
        shard,
        shards,
        len(meas),
        hardware,
        source_prov["measurements"],
    )
    return meas


def _gather(shards: Sequence[str | Path], arch_ids: pd.Series) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The shards' rows in the samples' order, and their provenance with the counts summed."""
    tables = [read_table(p) for p in shards]
    provs = [read_provenance(p) or {} for p in shards]
    meas = pd.concat(tables, ignore_index=True).set_index("arch_id")
    missing = [a for a in arch_ids if a not in meas.index]
    if missing or len(meas) != len(arch_ids):
        raise ValueError(
            f"profile shards {', '.join(map(str, shards))}: they do not hold exactly the samples "
            f"({len(meas)} rows for {len(arch_ids)} samples; missing e.g. {missing[:3]})"
        )
    meas = meas.loc[list(arch_ids)].reset_index()
    counts: dict[str, int] = {}
    for prov in provs:
        for key, value in (prov.get("measurements") or {}).items():
            counts[key] = counts.get(key, 0) + int(value)
    first = provs[0] if provs else {}
    devices = {json.dumps(p.get("device"), sort_keys=True) for p in provs}
    if len(devices) > 1:
        log.warning("the shards were measured on %d different machines: %s", len(devices), sorted(devices))
    source_prov = {
        "source": first.get("source"),
        "device": first.get("device"),
        "device_torch": first.get("device_torch"),
        "measurement_key": first.get("measurement_key"),
        "measurements": counts,
        "shards": len(shards),
    }
    return meas, source_prov
