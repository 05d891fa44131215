"""The ``import`` source: measurements that ``paretolm measure`` wrote on the device, read from a folder.

Every ``*.parquet`` file in the folder is checked before any of its numbers is used: it must have
been written by ``paretolm measure``, with the target's measurement settings, on a machine that
fits the target (its ``arch``, a GPU for ``device: cuda``, every field pinned in ``fingerprint``),
and all files must come from one machine, so a frontier never mixes two boards. A file that fails
is refused with its name and the reason; an impossible value (``measurement_problem``) likewise.
An architecture the files do not hold raises ``MissingMeasurements`` naming it and the command
that measures it on the device.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import canonical_hash, read_provenance, read_table
from paretolm.hardware.profiling import measurement_problem, ordered
from paretolm.hardware.sources.base import (
    MissingMeasurements,
    Source,
    fingerprint_problem,
    measure_command,
    settings_difference,
)
from paretolm.hardware.sources.device import MEASURE_STAGE

log = logging.getLogger("paretolm.hardware.sources")


class ImportSource(Source):
    """Measurements read from the files of ``folder``; nothing is measured."""

    kind = "import"

    def __init__(self, hardware: str, target: Mapping[str, Any], settings: Any, folder: str | Path):
        self.hardware = hardware
        self.folder = Path(folder)
        self.settings = settings
        self.rows: dict[str, dict[str, Any]] = {}
        self.files: list[Path] = []
        self.device: dict[str, Any] = {}
        self.torch = ""
        self.imported = 0
        for path in sorted(self.folder.glob("*.parquet")) if self.folder.is_dir() else []:
            self._read(path, target)
        self.key_hash = canonical_hash(
            {"fingerprint": self.device, "torch": self.torch, "settings": settings.to_dict()}
        )
        log.info(
            "hardware target %r: %d measurements in %d file(s) of %s",
            hardware,
            len(self.rows),
            len(self.files),
            self.folder,
        )

    def _read(self, path: Path, target: Mapping[str, Any]) -> None:
        def refuse(why: str) -> ValueError:
            return ValueError(f"hardware target {self.hardware!r}: refusing {path}: {why}")

        try:
            prov = read_provenance(path) or {}
        except Exception as e:  # noqa: BLE001  (any reader failure means the file cannot be used)
            raise refuse(f"not a readable Parquet file ({type(e).__name__}: {e})") from None
        if prov.get("stage") != MEASURE_STAGE:
            raise refuse("it was not written by `paretolm measure` (no measurement provenance)")
        differ = settings_difference(self.settings.to_dict(), prov.get("settings") or {})
        if differ:
            raise refuse(f"measured with other settings: {', '.join(differ)}")
        device = prov.get("device") or {}
        problem = fingerprint_problem(target, device)
        if problem:
            raise refuse(problem)
        if self.files and device != self.device:
            raise refuse(
                f"measured on another machine than {self.files[0]} ({device} vs {self.device}); "
                "keep one device's files per import folder"
            )
        if self.files and prov.get("device_torch") != self.torch:
            log.warning(
                "%s was measured with torch %s, %s with torch %s",
                path,
                prov.get("device_torch"),
                self.files[0],
                self.torch,
            )
        self.device, self.torch = device, self.torch or str(prov.get("device_torch"))
        df = read_table(path)
        for row in df.to_dict("records"):
            spec = row.pop("spec", None)
            arch_id = row.get("arch_id")
            if spec is None or ArchSpec.from_json(spec).arch_id != arch_id:
                raise refuse(f"row {arch_id!r} does not match its spec")
            problem = measurement_problem(row, self.settings.memory)
            if problem:
                raise refuse(f"{arch_id}: {problem}")
            self.rows.setdefault(arch_id, ordered(row))
        self.files.append(path)

    def __call__(self, spec: ArchSpec) -> dict[str, Any]:
        row = self.rows.get(spec.arch_id)
        if row is None:  # a candidate the search bred: it has never been on the device
            command = measure_command(self.hardware, "candidates.jsonl", "candidates.parquet")
            raise MissingMeasurements(
                self.hardware,
                [spec.arch_id],
                command,
                f"candidates.jsonl holds the spec, one JSON object per line: {spec.to_json()}. The search of an "
                "import target can only use architectures measured on the device: run it with no iterations for "
                "the frontier of the imported samples, or measure in the loop with source: remote (docs/hardware.md)",
            )
        self.imported += 1
        return dict(row)

    def require(self, specs: Sequence[ArchSpec], archs: str | Path) -> None:
        missing = [s.arch_id for s in specs if s.arch_id not in self.rows]
        if missing:
            command = measure_command(self.hardware, archs, f"{Path(archs).stem}.parquet")
            raise MissingMeasurements(self.hardware, missing, command, f"the import folder is {self.folder}")

    def counts(self) -> dict[str, int]:
        return {
            "measured": 0,
            "cache_hits": 0,
            "invalid_entries": 0,
            "imported": self.imported,
            "files": len(self.files),
        }
