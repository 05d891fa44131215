"""What every measurement source shares: the ``Source`` interface, the measurement-source names
and the checks that match a device's measurements to a target (``paretolm.hardware.sources``
chooses a target's source)."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from paretolm.core.arch import ArchSpec
from paretolm.hardware.profiling import arch_name

SOURCES = ("local", "import", "remote")
DEFAULT_TOKEN_ENV = "PARETOLM_TOKEN"


class MissingMeasurements(ValueError):
    """Architectures an ``import`` target has no measurement of, with the command that measures them."""

    def __init__(self, hardware: str, arch_ids: Sequence[str], command: str, hint: str = ""):
        self.hardware = hardware
        self.arch_ids = list(arch_ids)
        self.command = command
        shown = ", ".join(self.arch_ids[:10]) + (f" and {len(self.arch_ids) - 10} more" if len(arch_ids) > 10 else "")
        super().__init__(
            f"hardware target {hardware!r}: {len(self.arch_ids)} architecture(s) not measured on the device yet "
            f"({shown}); measure them there with\n    {command}\nand copy the file into the import folder"
            + (f"; {hint}" if hint else "")
        )


class Source:
    """The measure function of one hardware target, with what the provenance records about it.

    Called with one ``ArchSpec``, it returns the measurement columns (``arch_id`` first)."""

    kind = ""  # local, import, remote
    hardware: str
    key_hash: str  # hash of device fingerprint, torch version and settings: the cache key
    device: dict[str, Any]  # fingerprint of the machine that measures
    torch: str  # its torch version

    def __call__(self, spec: ArchSpec) -> dict[str, Any]:
        raise NotImplementedError

    def counts(self) -> dict[str, int]:
        raise NotImplementedError

    def require(self, specs: Sequence[ArchSpec], archs: str | Path) -> None:
        """Raise ``MissingMeasurements`` if some of ``specs`` (read from the file ``archs``) cannot
        be had; only an import can lack some, a measuring source measures what it lacks."""

    def provenance(self) -> dict[str, Any]:
        """Provenance fields of a table measured through this source."""
        return {
            "source": self.kind,
            "device": self.device,
            "device_torch": self.torch,
            "measurement_key": self.key_hash,
            "measurements": self.counts(),
        }


class ProfilerSource(Source):
    """A source that measures through a ``Profiler`` and its cache: here, or on a server."""

    def __init__(self, kind: str, profiler: Any, extra_counts: Callable[[], dict[str, int]] | None = None):
        self.kind = kind
        self.profiler = profiler
        self.hardware = profiler.hardware
        self.key_hash = profiler.key_hash
        self.device = profiler.fingerprint
        self.torch = profiler.torch_version
        self._extra_counts = extra_counts

    def __call__(self, spec: ArchSpec) -> dict[str, Any]:
        return self.profiler(spec)

    def counts(self) -> dict[str, int]:
        return {**self.profiler.counts(), **(self._extra_counts() if self._extra_counts else {})}


def import_dir(hardware: str, target: Mapping[str, Any]) -> Path:
    """The folder an ``import`` target reads (``import_dir``, else ``measurements/<target>``)."""
    return Path(target.get("import_dir") or Path("measurements") / hardware)


def measure_command(
    hardware: str, archs: str | Path, out: str | Path, config: str | Path = "config/config.yaml"
) -> str:
    """The ``paretolm measure`` command line that measures ``archs`` on the device."""
    args = [
        "paretolm",
        "measure",
        "--archs",
        str(archs),
        "--hardware",
        hardware,
        "--config",
        str(config),
        "--out",
        str(out),
    ]
    return shlex.join(args)


def target_source(name: str, target: Mapping[str, Any]) -> str:
    """The source of target ``name``: ``source`` if set, else ``remote`` when it has a ``remote``
    block, ``import`` when it has an ``import_dir``, else ``local``. ValueError naming the key when
    the keys contradict each other."""
    source = target.get("source")
    implied = "remote" if target.get("remote") else "import" if target.get("import_dir") else None
    if source is None:
        return implied or "local"
    if source not in SOURCES:
        raise ValueError(f"hardware.{name}.source: {source!r} is not one of {', '.join(SOURCES)}")
    if source == "remote" and not target.get("remote"):
        raise ValueError(f"hardware.{name}.remote: a source: remote target needs remote.url (the server)")
    for key, needs in (("remote", "remote"), ("import_dir", "import")):
        if target.get(key) and source != needs:
            raise ValueError(f"hardware.{name}.{key}: only used by source: {needs}, but the source is {source}")
    return source


# -- matching a device to a target ----------------------------------------------------------------
def settings_difference(want: Mapping[str, Any], got: Mapping[str, Any]) -> list[str]:
    """``key: got (target: want)`` for every measurement setting that differs."""
    return [
        f"{k}={got.get(k)!r} (target: {want.get(k)!r})"
        for k in sorted(set(want) | set(got))
        if want.get(k) != got.get(k)
    ]


def fingerprint_problem(target: Mapping[str, Any], fingerprint: Mapping[str, Any]) -> str | None:
    """Why a device with ``fingerprint`` cannot stand for ``target`` (its ``arch``, a CUDA GPU for
    ``device: cuda``, and every field pinned in its ``fingerprint``), or None."""
    want = target.get("arch")
    machine = str(fingerprint.get("machine", ""))
    if want and arch_name(str(want)) != arch_name(machine):
        return f"measured on a {machine or 'unknown'} machine, but the target needs {want}"
    if target.get("device") == "cuda" and not fingerprint.get("cuda_device"):
        return "measured on a machine without a CUDA GPU, but the target's device is cuda"
    for key, value in (target.get("fingerprint") or {}).items():
        if str(fingerprint.get(key)) != str(value):
            return f"measured on a machine with {key}={fingerprint.get(key)!r}, but the target pins {value!r}"
    return None


__all__ = [
    "DEFAULT_TOKEN_ENV",
    "SOURCES",
    "MissingMeasurements",
    "ProfilerSource",
    "Source",
    "fingerprint_problem",
    "import_dir",
    "measure_command",
    "settings_difference",
    "target_source",
]
