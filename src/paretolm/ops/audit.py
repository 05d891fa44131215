"""Audit a results directory: is every artifact traceable, current and consistent?

For each Parquet file under the directory (the measurement cache excluded) the
audit reads the table and its provenance and reports:

* ``unreadable``: the file is not a readable Parquet table;
* ``missing-provenance``: no ``paretolm`` metadata, so nothing says how it was made;
* ``stale``: an input file recorded in the provenance is gone or its bytes changed since, or
  (when a config is given) the config part of the stage that made it (``paretolm.stages``, both
  halves of the workflow) now hashes differently;
* ``inconsistent``: the table disagrees with its inputs: ids not matching the specs, a stage
  whose architectures differ from its samples, measurement columns missing, or a frontier that is
  not exactly the non-dominated set of its archive.

Artifacts written by stages this module does not know are checked for provenance and inputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from paretolm.core import pareto
from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import canonical_hash, file_hash, read_provenance, read_table
from paretolm.stages import STAGES, config_part

_SKIP_DIRS = {"cache"}
# Columns that must hold finite numbers at or above this wherever a table carries them.
VALUE_COLUMNS = {
    "latency_ms": 0.0,
    "latency_iqr_ms": 0.0,
    "peak_memory_mb": 0.0,
    "decoder_params": 0.0,
    "total_params": 0.0,
    "flops": 0.0,
}
HARDWARE_COLUMNS = ("latency_ms", "latency_iqr_ms", "peak_memory_mb")


@dataclass(frozen=True)
class Finding:
    path: str
    kind: str  # unreadable, missing-provenance, stale, inconsistent
    message: str


def artifacts(results: str | Path) -> list[Path]:
    """Every Parquet artifact under ``results`` (the cache folder skipped), sorted."""
    root = Path(results)
    if not root.is_dir():
        raise ValueError(f"results: {str(root)!r} is not a directory")
    return sorted(
        p
        for p in root.rglob("*.parquet")
        if not _SKIP_DIRS & set(p.relative_to(root).parts[:-1]) and not p.name.startswith(".")
    )


def _input(prov: Mapping[str, Any], needle: str) -> str | None:
    return next((p for p in prov.get("inputs", {}) if needle in p), None)


class Auditor:
    def __init__(self, root: str | Path = ".", config: Mapping[str, Any] | None = None):
        self.root = Path(root)
        self.config = config
        self.findings: list[Finding] = []

    def add(self, path: Path, kind: str, message: str) -> None:
        self.findings.append(Finding(str(path), kind, message))

    def run(self, results: str | Path) -> list[Finding]:
        for path in artifacts(results):
            self.check(path)
        return self.findings

    def check(self, path: Path) -> None:
        try:
            df = read_table(path)
            prov = read_provenance(path)
        except Exception as e:  # noqa: BLE001  (any reader failure is the finding)
            self.add(path, "unreadable", f"cannot read as Parquet: {e}")
            return
        if not prov:
            self.add(path, "missing-provenance", "no paretolm provenance in the file's metadata")
            return
        for key in ("stage", "config_hash", "inputs", "code"):
            if key not in prov:
                self.add(path, "missing-provenance", f"provenance lacks {key!r}")
        for inp, recorded in prov.get("inputs", {}).items():
            where = self.root / inp
            if not where.exists():
                self.add(path, "stale", f"input {inp} no longer exists")
            elif file_hash(where) != recorded:
                self.add(
                    path, "stale", f"input {inp} changed since this was made (hash {recorded} -> {file_hash(where)})"
                )
        self._check_config(path, prov)
        self._check_values(path, df, prov)
        checker = getattr(self, f"_consistent_{prov.get('stage')}", None)
        if checker is not None:
            try:
                checker(path, df, prov)
            except (KeyError, ValueError) as e:
                self.add(path, "inconsistent", f"cannot check against its inputs: {e}")

    def _check_config(self, path: Path, prov: Mapping[str, Any]) -> None:
        if self.config is None or prov.get("stage") not in STAGES:
            return
        try:
            part = config_part(prov["stage"], self.config, **prov.get("wildcards", {}))
        except (KeyError, ValueError) as e:
            self.add(path, "stale", f"the current config cannot make this artifact any more ({e})")
            return
        now = canonical_hash(part)
        if now != prov.get("config_hash"):
            changed = _changed_keys(prov.get("config", {}), part)
            self.add(
                path,
                "stale",
                f"config of stage {prov['stage']!r} changed since this was made ({', '.join(changed) or 'values'})",
            )

    def _check_values(self, path: Path, df: pd.DataFrame, prov: Mapping[str, Any]) -> None:
        """Measured and counted columns hold finite, positive numbers wherever they appear (an
        IQR may be 0; peak memory may be missing only where memory was not measured)."""
        memory_off = prov.get("config", {}).get("profile", {}).get("memory") is False
        for column, lowest in VALUE_COLUMNS.items():
            if column not in df.columns:
                continue
            values = pd.to_numeric(df[column], errors="coerce")
            missing = values.isna() & ~(memory_off & (column == "peak_memory_mb"))
            if column in HARDWARE_COLUMNS and "measured" in df.columns:
                # a search archive: only measured rows must have hardware numbers (a method may
                # leave candidates unevaluated on the target, e.g. MeRino's below its best)
                missing &= df["measured"].astype(bool)
            bad = missing | ~(values.isna() | (np.isfinite(values) & (values >= lowest)))
            if column != "latency_iqr_ms":
                bad |= values == 0
            if bad.any():
                example = df.loc[bad, "arch_id"].iloc[0] if "arch_id" in df else bad.idxmax()
                self.add(
                    path,
                    "inconsistent",
                    f"{int(bad.sum())} rows with a missing, non-finite or "
                    f"non-positive {column} (e.g. {example}: {df.loc[bad, column].iloc[0]})",
                )

    # -- per-stage consistency ---------------------------------------------------------------
    def _ids_of(self, inp: str | None) -> list[str] | None:
        if inp is None or not (self.root / inp).exists():
            return None
        return read_table(self.root / inp)["arch_id"].tolist()

    def _consistent_sample(self, path: Path, df: pd.DataFrame, prov: Mapping[str, Any]) -> None:
        if not df["arch_id"].is_unique:
            self.add(path, "inconsistent", "duplicate arch_id rows")
        pairs = zip(df["arch_id"], df["spec"], strict=True)
        bad = [a for a, s in pairs if ArchSpec.from_json(s).arch_id != a]
        if bad:
            self.add(path, "inconsistent", f"{len(bad)} arch_id values do not match their spec (e.g. {bad[0]})")
        n = prov.get("config", {}).get("sample", {}).get("n")
        if n is not None and len(df) != n:
            self.add(path, "inconsistent", f"{len(df)} rows but sample.n={n}")

    def _same_ids(self, path: Path, df: pd.DataFrame, inp: str | None, what: str) -> None:
        ids = self._ids_of(inp)
        if ids is not None and sorted(ids) != sorted(df["arch_id"]):
            self.add(path, "inconsistent", f"architectures differ from {what} {inp}")

    def _consistent_proxies(self, path: Path, df: pd.DataFrame, prov: Mapping[str, Any]) -> None:
        self._same_ids(path, df, _input(prov, "samples/"), "samples")
        names = prov.get("config", {}).get("proxies", {}).get("names", [])
        missing = [n for n in names if n not in df.columns]
        if missing:
            self.add(path, "inconsistent", f"proxy columns {missing} missing")

    def _consistent_profile(self, path: Path, df: pd.DataFrame, prov: Mapping[str, Any]) -> None:
        self._same_ids(path, df, _input(prov, "samples/"), "samples")
        missing = [c for c in ("latency_ms", "latency_iqr_ms", "peak_memory_mb") if c not in df.columns]
        if missing:
            self.add(path, "inconsistent", f"measurement columns {missing} missing")

    def _consistent_search(self, path: Path, df: pd.DataFrame, prov: Mapping[str, Any]) -> None:
        archive = _input(prov, "archive.parquet")
        if archive is None:
            if not df["arch_id"].is_unique:
                self.add(path, "inconsistent", "archive has duplicate arch_id rows")
            return
        if not (self.root / archive).exists():
            return
        arch = read_table(self.root / archive)
        objectives = prov.get("objectives") or {}
        feasible = arch[arch["feasible"]] if "feasible" in arch else arch
        if "measured" in feasible:  # predicted numbers never make a frontier (search.measure: verify)
            feasible = feasible[feasible["measured"]]
        want = set(pareto.pareto_front(feasible, objectives)["arch_id"])
        got = set(df["arch_id"])
        if want != got:
            self.add(
                path,
                "inconsistent",
                f"frontier is not the non-dominated set of {archive}: "
                f"{len(got - want)} extra, {len(want - got)} missing",
            )


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out = []
        for k in sorted(set(old) | set(new)):
            out += _changed_keys(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]


def audit(
    results: str | Path, config: Mapping[str, Any] | None = None, root: str | Path | None = None
) -> list[Finding]:
    """Findings for every artifact under ``results``; ``root`` (default: the parent of
    ``results``) is the directory the recorded input paths are relative to."""
    results = Path(results)
    return Auditor(results.resolve().parent if root is None else root, config).run(results)


def report(findings: list[Finding], n_artifacts: int, as_json: bool = False) -> str:
    if as_json:
        return json.dumps({"artifacts": n_artifacts, "findings": [asdict(f) for f in findings]}, indent=2)
    if not n_artifacts:
        return "no artifacts found: nothing was audited (is this the results folder of a run?)"
    if not findings:
        return f"{n_artifacts} artifacts: all have provenance, are current and consistent"
    lines = [f"{f.kind:18s} {f.path}: {f.message}" for f in findings]
    bad = len({f.path for f in findings})
    lines.append(f"{bad} of {n_artifacts} artifacts have problems")
    return "\n".join(lines)
