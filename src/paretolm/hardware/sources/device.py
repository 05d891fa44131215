"""What runs on the device: reading the architectures to measure, the target's settings from the
config, and writing the measurement table ``paretolm measure`` hands back to the workflow.

Nothing here imports the workflow's extras (Snakemake, lm-eval, datasets), so a board with the
core install (``pip install paretolm``) can run it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import provenance, read_table, write_table
from paretolm.hardware.profiling import Profiler, settings_from_params

log = logging.getLogger("paretolm.hardware.sources")

MEASURE_STAGE = "measure"


def read_archs(path: str | Path) -> list[ArchSpec]:
    """The architectures in ``path``: a Parquet table with a ``spec`` column (samples, a profile
    table, a search archive) or JSON lines, one spec per line (``paretolm arch sample``). Duplicates
    are dropped, the first occurrence kept."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--archs: no file {str(path)!r}")
    specs: list[ArchSpec] = []
    if path.suffix == ".parquet":
        df = read_table(path)
        if "spec" not in df.columns:
            raise ValueError(f"--archs: {path} has no 'spec' column (columns: {', '.join(df.columns)})")
        for i, text in enumerate(df["spec"]):
            try:
                specs.append(ArchSpec.from_json(text))
            except ValueError as e:
                raise ValueError(f"--archs: {path} row {i}: {e}") from None
    else:
        with open(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    specs.append(ArchSpec.from_dict(data.get("spec", data) if isinstance(data, dict) else data))
                except (ValueError, TypeError) as e:
                    raise ValueError(f"--archs: {path}:{lineno}: {e}") from None
    first = {}
    for spec in specs:
        first.setdefault(spec.arch_id, spec)
    return list(first.values())


def measure_table(
    hardware: str,
    part: Mapping[str, Any],
    specs: list[ArchSpec],
    cache_dir: str | Path | None,
    out: str | Path,
    inputs: list[str | Path] = (),
) -> pd.DataFrame:
    """Measure ``specs`` on this machine as target ``hardware`` (through the cache, so a killed run
    resumes) and write ``out``: ``arch_id``, ``spec`` and the profile stage's measurement columns,
    with the device's fingerprint, torch version and settings in the provenance."""
    settings = settings_from_params(part)
    profiler = Profiler(hardware, settings, cache_dir)
    t0 = time.perf_counter()
    rows = []
    for i, spec in enumerate(specs, start=1):
        rows.append(profiler(spec))
        log.info("%d/%d %s", i, len(specs), spec.arch_id)
    df = pd.DataFrame(rows)
    df.insert(1, "spec", [s.to_json() for s in specs])
    prov = provenance(
        MEASURE_STAGE,
        part,
        inputs,
        target=hardware,
        settings=settings.to_dict(),
        device=profiler.fingerprint,
        device_torch=profiler.torch_version,
        measurement_key=profiler.key_hash,
        measurements=profiler.counts(),
        seconds=time.perf_counter() - t0,
    )
    write_table(df, out, prov)
    log.info("wrote %d measurements of %r to %s: %s", len(df), hardware, out, profiler.counts())
    return df
