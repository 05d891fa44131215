"""Where a hardware target's measurements come from: its ``source``.

* ``local`` (the default): this machine measures, through the measurement cache
  (``paretolm.hardware.profiling.Profiler``);
* ``import``: tables that ``paretolm measure`` wrote on the device itself, copied into a folder
  (``import_dir``, default ``measurements/<target>``); nothing is measured here;
* ``remote``: a ``paretolm serve`` process on the device measures each architecture on request,
  and this machine keeps a cache of its answers.

The profile and search stages get the measure function of a target from ``source_for``; whatever
the source, it is called with one ``ArchSpec`` and returns the same measurement columns.
Step-by-step use with a board: docs/hardware.md.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from paretolm.core.arch import ArchSpec
from paretolm.hardware.profiling import Profiler, arch_name, check_available, settings_from_params

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
        return {"source": self.kind, "device": self.device, "device_torch": self.torch,
                "measurement_key": self.key_hash, "measurements": self.counts()}


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


def measure_command(hardware: str, archs: str | Path, out: str | Path,
                    config: str | Path = "config/config.yaml") -> str:
    """The ``paretolm measure`` command line that measures ``archs`` on the device."""
    args = ["paretolm", "measure", "--archs", str(archs), "--hardware", hardware, "--config", str(config),
            "--out", str(out)]
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


def check_target(name: str, target: Mapping[str, Any]) -> None:
    """Raise ValueError naming target ``name`` and what is missing if this machine cannot get its
    measurements: a ``local`` target must run here; a ``remote`` one needs its token in the
    environment; an ``import`` one needs nothing here (missing files are named by the profile stage)."""
    source = target_source(name, target)
    if source == "local":
        check_available(name, target)
    elif source == "remote":
        from paretolm.hardware.sources.remote import token_from_env

        token_from_env(name, target["remote"].get("token_env") or DEFAULT_TOKEN_ENV)


def source_for(hardware: str, part: Mapping[str, Any], cache_dir: str | Path | None) -> Source:
    """The measure function of target ``hardware`` from a stage's config part (``hardware`` and
    ``profile``, as ``paretolm.config.measurement_settings`` gives them)."""
    target = part["hardware"]
    settings = settings_from_params(part)
    source = target_source(hardware, target)
    if source == "import":
        from paretolm.hardware.sources.imported import ImportSource

        return ImportSource(hardware, target, settings, import_dir(hardware, target))
    if source == "remote":
        from paretolm.hardware.sources.remote import remote_source

        return remote_source(hardware, target, settings, cache_dir)
    return local_source(hardware, settings, cache_dir)


def local_source(hardware: str, settings: Any, cache_dir: str | Path | None) -> Source:
    """This machine measures, through the cache."""
    return ProfilerSource("local", Profiler(hardware, settings, cache_dir))


# -- matching a device to a target ----------------------------------------------------------------
def settings_difference(want: Mapping[str, Any], got: Mapping[str, Any]) -> list[str]:
    """``key: got (target: want)`` for every measurement setting that differs."""
    return [f"{k}={got.get(k)!r} (target: {want.get(k)!r})" for k in sorted(set(want) | set(got))
            if want.get(k) != got.get(k)]


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


__all__ = ["DEFAULT_TOKEN_ENV", "SOURCES", "MissingMeasurements", "ProfilerSource", "Source", "check_target",
           "fingerprint_problem", "import_dir", "local_source", "measure_command", "settings_difference",
           "source_for", "target_source"]
