"""Parquet artifacts: atomic writes with provenance in the file's metadata.

Every table a stage writes goes through ``write_table``: it lands in a temporary file next to the
target and is renamed into place, so a killed run never leaves a half-written artifact, and it
carries a ``paretolm`` metadata entry (JSON) saying what made it: the hash of the config parts that
affect it, the paretolm version and git revision, library versions, the hardware, and the hashes of
its input files. ``read_provenance`` gives that entry back; ``paretolm audit`` checks it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from paretolm import __version__
from paretolm.core import lazy

PROVENANCE_KEY = b"paretolm"
_LIBRARIES = ("torch", "numpy", "pandas", "pyarrow", "transformers", "snakemake", "scipy")


def canonical_hash(obj: Any) -> str:
    """SHA-256 (16 hex digits) of an object's canonical JSON (sorted keys)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes (16 hex digits)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def code_version() -> dict[str, str]:
    """paretolm's version and, when run from a checkout, its git revision (with a dirty flag)."""
    out = {"paretolm": __version__}
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if rev.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--", "src"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            out["git_revision"] = rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return out


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def hardware_fingerprint() -> dict[str, Any]:
    """What the machine is, enough to tell two measurement hosts apart."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "system": platform.system(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
    }
    torch = lazy.module("torch")  # a measuring machine has it; reading this module needs none
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
        info["cuda_version"] = torch.version.cuda
    return info


def provenance(
    stage: str,
    config: Mapping[str, Any] | None = None,
    inputs: Iterable[str | Path] = (),
    **extra: Any,
) -> dict[str, Any]:
    """The provenance record for an artifact made by ``stage``."""
    return {
        "stage": stage,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config_hash": canonical_hash(config or {}),
        "config": dict(config or {}),
        "code": code_version(),
        "libraries": library_versions(),
        "hardware": hardware_fingerprint(),
        "inputs": {_portable(p): file_hash(p) for p in inputs},
        "argv": sys.argv[:1],
        **extra,
    }


def _portable(path: str | Path) -> str:
    """An input's path as recorded: relative to the working directory when inside it, so
    provenance does not depend on where the project was checked out."""
    p = Path(path)
    if p.is_absolute():
        try:
            return str(p.relative_to(Path.cwd()))
        except ValueError:
            return str(p)
    return str(p)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the artifact normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; if the block succeeds it replaces ``path`` (the old
    folder renamed aside first, so at every instant one complete folder exists under one of the two
    names) with the permissions of every other artifact; otherwise it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        normal_permissions(tmp)  # mkdtemp makes it private
        old = path.with_name(path.name + ".old")
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def normal_permissions(folder: str | Path) -> None:
    """Give ``folder`` and everything in it the permissions the umask gives new files and folders
    (``tempfile.mkdtemp`` makes a private folder; artifacts are shared like any other file)."""
    folder = Path(folder)
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_UMASK)


def write_table(df: pd.DataFrame, path: str | Path, prov: Mapping[str, Any]) -> Path:
    """Write ``df`` to Parquet atomically with ``prov`` stored under the ``paretolm`` metadata key."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[PROVENANCE_KEY] = json.dumps(prov, sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def read_table(path: str | Path) -> pd.DataFrame:
    """A Parquet artifact as a DataFrame; a damaged file raises ValueError naming it and saying how
    to get it rebuilt."""
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError) as e:
        if not Path(path).exists():
            raise
        raise ValueError(
            f"{path}: damaged Parquet file ({type(e).__name__}: {e}); run snakemake again, which "
            "moves it to results/.damaged/ and rebuilds it"
        ) from None


def table_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a readable Parquet file, or None."""
    try:
        pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def mark_damaged(results: str | Path = "results") -> list[tuple[Path, str]]:
    """Find Parquet artifacts under ``results`` that cannot be read (a disk or an editor broke
    them: paretolm writes atomically) and set their modification time to the epoch, so Snakemake
    sees them as older than their inputs and rebuilds them, and what depends on them, before any
    stage reads them. Nothing is deleted. Returns (file, problem) pairs."""
    results = Path(results)
    found = []
    for path in sorted(results.rglob("*.parquet")):
        if path.relative_to(results).parts[0] == "cache":
            continue
        problem = table_problem(path)
        if problem is not None:
            os.utime(path, (0, 0))
            found.append((path, problem))
    return found


def read_provenance(path: str | Path) -> dict[str, Any] | None:
    """The provenance record of a Parquet artifact, or None if it has none."""
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(PROVENANCE_KEY)
    return json.loads(raw) if raw else None


def write_json(obj: Any, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)
