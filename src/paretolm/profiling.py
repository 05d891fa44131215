"""Latency and peak memory of one forward pass on a hardware target, with an on-disk cache.

The target's runtime (``paretolm.runtimes``, chosen by its ``device``) prepares the model, times
warm-up plus adaptive repeats (median and IQR reported) and measures the pass's peak memory. Every
measurement is cached as a JSON file keyed by architecture, machine fingerprint, torch version and
settings, so nothing is measured twice and a killed run resumes. Protocol details: docs/hardware.md.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .arch import ArchSpec
from .artifacts import atomic_path, canonical_hash, hardware_fingerprint

log = logging.getLogger("paretolm.profiling")

_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}
_ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64"}


# -- hardware targets -----------------------------------------------------------------------------
def arch_name(machine: str) -> str:
    """A CPU architecture as ``platform.machine()`` spells it on Linux (arm64 -> aarch64, amd64 -> x86_64)."""
    m = machine.lower()
    return _ARCH_ALIASES.get(m, m)


def _machine() -> str:
    return arch_name(platform.machine())


def check_available(name: str, target: Mapping[str, Any]) -> None:
    """Raise ValueError naming the target and what is missing if this machine cannot serve it."""
    from .runtimes import get as get_runtime

    want = target.get("arch")
    if want and _ARCH_ALIASES.get(str(want).lower(), str(want).lower()) != _machine():
        raise ValueError(
            f"hardware target {name!r}: needs a {want} CPU, but this machine is {_machine()}; "
            "run it where that CPU is (e.g. with the cluster profile, see docs/workflow.md)"
        )
    dtype = target.get("dtype", "float32")
    if dtype not in _DTYPES:
        raise ValueError(f"hardware target {name!r}: dtype {dtype!r} not one of {sorted(_DTYPES)}")
    get_runtime(target.get("device", "cpu")).check(name, target)


@dataclass(frozen=True)
class Settings:
    """How to measure: the profile config section plus the hardware target (routing excluded)."""

    device: str = "cpu"
    dtype: str = "float32"
    quantize: str | None = None
    threads: int = 1
    arch: str | None = None
    batch: int = 1
    seq_len: int = 192
    warmup: int = 3
    min_repeats: int = 10
    max_repeats: int = 40
    rel_iqr_max: float = 0.05
    memory: bool = True
    seed: int = 0

    @classmethod
    def from_parts(cls, hardware: Mapping[str, Any], profile: Mapping[str, Any]) -> Settings:
        keys = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in {**hardware, **profile}.items() if k in keys}
        s = cls(**values)
        if s.min_repeats < 10:
            raise ValueError(f"profile.min_repeats: at least 10 timed runs, got {s.min_repeats}")
        if s.max_repeats < s.min_repeats:
            raise ValueError(f"profile.max_repeats: {s.max_repeats} < min_repeats={s.min_repeats}")
        return s

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


# -- one measurement ------------------------------------------------------------------------------
def prepare_model(spec: ArchSpec, s: Settings) -> Any:
    """The model as the target runs it: eval mode, then the runtime's dtype, int8 linears, device."""
    import torch

    from .models import build_model
    from .runtimes import get as get_runtime

    torch.manual_seed(s.seed)
    return get_runtime(s.device).prepare(build_model(spec).eval(), s)


def weight_bytes(model: Any) -> int:
    """Bytes of every tensor in the model's state (parameters, buffers, packed int8 weights),
    each storage counted once."""
    import torch

    seen: set[tuple[int, int]] = set()
    total = 0

    def add(t: Any) -> None:
        nonlocal total
        if isinstance(t, torch.Tensor):
            if t.is_quantized:
                n = t.numel() * t.element_size()
                key = (id(t), n)
            else:
                st = t.untyped_storage()
                n = st.nbytes()
                key = (st.data_ptr(), n)
            if key not in seen:
                seen.add(key)
                total += n
        elif isinstance(t, (tuple, list)):
            for x in t:
                add(x)

    for p in list(model.parameters()) + list(model.buffers()):
        add(p)
    for value in model.state_dict(keep_vars=True).values():
        if isinstance(value, torch.Tensor) and value.is_quantized or isinstance(value, (tuple, list)):
            add(value)
    return total


def _iqr(values: Sequence[float]) -> float:
    q1, q3 = np.percentile(values, [25, 75])
    return float(q3 - q1)


def time_forward(model: Any, ids: Any, s: Settings) -> list[float]:
    """Milliseconds of each timed pass (after warm-up), adaptive as described above."""
    import torch

    from .runtimes import get as get_runtime

    runtime = get_runtime(s.device)

    def one() -> float:
        return runtime.time_call(lambda: model(ids))

    with torch.inference_mode():
        for _ in range(s.warmup):
            model(ids)
        runtime.synchronize()
        times = [one() for _ in range(s.min_repeats)]
        step = max(1, s.min_repeats // 2)
        while len(times) < s.max_repeats:
            med = statistics.median(times)
            if med <= 0 or _iqr(times) / med <= s.rel_iqr_max:
                break
            times.extend(one() for _ in range(min(step, s.max_repeats - len(times))))
    return times


def measure(spec: ArchSpec, s: Settings) -> dict[str, Any]:
    """Measure one architecture: latency statistics and peak memory (see the module docstring)."""
    import torch

    if s.seq_len > spec.max_seq_len:
        raise ValueError(
            f"profile.seq_len: {s.seq_len} exceeds the architecture's max_seq_len={spec.max_seq_len}"
        )
    torch.set_num_threads(s.threads)
    t0 = time.perf_counter()
    model = prepare_model(spec, s)
    gen = torch.Generator().manual_seed(s.seed)
    ids = torch.randint(0, spec.vocab_size, (s.batch, s.seq_len), generator=gen).to(s.device)
    weights = weight_bytes(model)
    times = time_forward(model, ids, s)
    peak = float("nan")
    transient = float("nan")
    if s.memory:
        from .runtimes import get as get_runtime

        peak_bytes, transient_bytes = get_runtime(s.device).peak_bytes(model, ids, weights)
        peak = peak_bytes / 2**20
        transient = transient_bytes / 2**20
    del model
    gc.collect()
    return {
        "arch_id": spec.arch_id,
        "latency_ms": float(statistics.median(times)),
        "latency_iqr_ms": _iqr(times),
        "latency_mean_ms": float(statistics.fmean(times)),
        "latency_min_ms": float(min(times)),
        "repeats": len(times),
        "peak_memory_mb": float(peak),
        "weights_mb": weights / 2**20,
        "activation_peak_mb": float(transient),
        "measure_seconds": time.perf_counter() - t0,
        "forward_ms_total": float(sum(times)),
    }


def _ordered(result: Mapping[str, Any]) -> dict[str, Any]:
    """``arch_id`` first, then the other keys sorted: tables have the same columns in the same
    order whether their rows were measured now or read from the cache."""
    return {"arch_id": result.get("arch_id"), **{k: result[k] for k in sorted(result) if k != "arch_id"}}


def measurement_problem(result: Mapping[str, Any], memory: bool = True) -> str | None:
    """Why a measurement cannot be right (a missing, non-finite or non-positive latency; a missing
    or non-positive peak memory when memory is measured), or None."""
    for key, required in (("latency_ms", True), ("latency_iqr_ms", True), ("peak_memory_mb", memory)):
        value = result.get(key)
        if value is None:
            if required:
                return f"no {key}"
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            return f"{key}={value!r}, not a number"
        if not required and math.isnan(value):
            continue
        if not math.isfinite(value) or value < 0 or (value == 0 and key != "latency_iqr_ms"):
            return f"{key}={value!r}"
    return None


# -- cache ---------------------------------------------------------------------------------------
@dataclass
class Profiler:
    """Measures specs on one hardware target through the on-disk cache; counts what it did."""

    hardware: str
    settings: Settings
    cache_dir: str | Path | None
    measure_fn: Callable[[ArchSpec, Settings], dict[str, Any]] = measure
    measured: int = 0
    cache_hits: int = 0
    invalid_entries: int = 0
    fingerprint: dict[str, Any] = field(default_factory=hardware_fingerprint)
    # Another machine measures (a measurement server): its torch version keys the cache, and
    # this machine need not be able to run the target itself (``check=False``).
    torch_version: str | None = None
    check: bool = True

    def __post_init__(self) -> None:
        import torch

        if self.check:
            check_available(self.hardware, self.settings.to_dict())
        self.torch_version = self.torch_version or torch.__version__
        self._key_base = {
            "fingerprint": self.fingerprint,
            "torch": self.torch_version,
            "settings": self.settings.to_dict(),
        }
        self.key_hash = canonical_hash(self._key_base)

    def cache_path(self, arch_id: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return Path(self.cache_dir) / self.hardware / f"{arch_id}-{self.key_hash}.json"

    def lookup(self, arch_id: str) -> dict[str, Any] | None:
        """The cached measurement of ``arch_id``, or None. An entry that cannot be read, belongs
        to another key or holds impossible values (non-finite, non-positive) is reported in the
        log, counted in ``invalid_entries`` and measured again (the new entry replaces it)."""
        path = self.cache_path(arch_id)
        if path is None or not path.exists():
            return None
        try:
            entry = json.loads(path.read_text())
            result = entry["result"]
            problem = None
            if entry.get("key") != self._key_base or result.get("arch_id") != arch_id:
                problem = "it was written for another architecture or other settings"
            else:
                problem = measurement_problem(result, self.settings.memory)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            problem = f"it cannot be read ({type(e).__name__}: {e})"
        if problem:
            self.invalid_entries += 1
            log.warning("measurement cache entry %s is invalid (%s); measuring %s again", path, problem, arch_id)
            return None
        return _ordered(result)

    def __call__(self, spec: ArchSpec) -> dict[str, Any]:
        """The measurement of ``spec``: from the cache if there, else measured and cached."""
        hit = self.lookup(spec.arch_id)
        if hit is not None:
            self.cache_hits += 1
            return hit
        result = _ordered(self.measure_fn(spec, self.settings))
        problem = measurement_problem(result, self.settings.memory)
        if problem:
            raise ValueError(f"hardware target {self.hardware!r}: measuring {spec.arch_id} gave {problem}; "
                             "nothing was cached")
        self.measured += 1
        path = self.cache_path(spec.arch_id)
        if path is not None:
            entry = {"key": self._key_base, "result": result, "spec": spec.to_json(),
                     "hardware": self.hardware, "created": time.time()}
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(entry, sort_keys=True, default=str))
        log.info("measured %s: %.3f ms (IQR %.3f, %s runs), %.1f MB", spec.arch_id, result["latency_ms"],
                 result["latency_iqr_ms"], result.get("repeats"), result["peak_memory_mb"])
        return result

    def table(self, specs: Iterable[ArchSpec]) -> pd.DataFrame:
        return pd.DataFrame([self(spec) for spec in specs])

    def counts(self) -> dict[str, int]:
        return {"measured": self.measured, "cache_hits": self.cache_hits, "invalid_entries": self.invalid_entries}


def settings_from_params(part: Mapping[str, Any]) -> Settings:
    return Settings.from_parts(part["hardware"], part["profile"])

