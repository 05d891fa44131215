"""Latency and peak memory of one forward pass on a hardware target, with an on-disk cache.

The target's runtime (``paretolm.hardware.runtimes``: ``torch``, ``torch_int8``, ``onnxruntime``) loads the
model; prefill (one forward pass) and decode (per token, with the decoding cache) are timed with
warm-up plus adaptive repeats (median and IQR reported, with the protocol they were measured under)
and the prefill pass's peak memory is measured. Every
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
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from paretolm.core import lazy
from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import atomic_path, canonical_hash, hardware_fingerprint
from paretolm.hardware.runtimes import Session
from paretolm.hardware.runtimes import get as get_runtime
from paretolm.hardware.runtimes import resolve as resolve_runtime
from paretolm.hardware.runtimes.pytorch import TorchSession, module_weight_bytes
from paretolm.hardware.settings import Settings

if TYPE_CHECKING:
    import torch
else:  # torch is imported on first use: reading this module (the config check, the CLI, the plugin
    # registries) does not load it
    torch = lazy.module("torch")


log = logging.getLogger("paretolm.hardware.profiling")

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
    want = target.get("arch")
    if want and _ARCH_ALIASES.get(str(want).lower(), str(want).lower()) != _machine():
        raise ValueError(
            f"hardware target {name!r}: needs a {want} CPU, but this machine is {_machine()}; "
            "run it where that CPU is (e.g. with the cluster profile, see docs/workflow.md)"
        )
    try:
        resolved = resolve_runtime(target)
    except ValueError as e:
        raise ValueError(f"hardware target {name!r}: {e}") from e
    get_runtime(resolved["runtime"]).check(name, resolved)


# -- one measurement ------------------------------------------------------------------------------
def prepare_model(spec: ArchSpec, s: Settings) -> Session:
    """The model as the target runs it: built from ``spec`` with seed ``s.seed``, in eval mode,
    loaded by the target's runtime (dtype, int8, ONNX export, device). Calling it runs a forward
    pass (``session(session.inputs(ids))``)."""
    torch.manual_seed(s.seed)
    return get_runtime(s.runtime).load(spec.plugin.build(spec).eval(), s)


def weight_bytes(model: Any) -> int:
    """Bytes of the weights of a session or ``nn.Module`` (each storage counted once; packed int8
    weights; an ONNX graph's initializers)."""
    if isinstance(model, TorchSession):
        model = model.model
    return model.weight_bytes() if hasattr(model, "weight_bytes") else module_weight_bytes(model)


def _iqr(values: Sequence[float]) -> float:
    q1, q3 = np.percentile(values, [25, 75])
    return float(q3 - q1)


def _wall_ms(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / 1e6


def _cpu_ms(fn: Callable[[], Any]) -> float:
    """CPU time of the process during ``fn()``: with one thread, the call's compute time, which
    other processes on the machine delay (wall clock) but barely change."""
    t0 = time.process_time_ns()
    fn()
    return (time.process_time_ns() - t0) / 1e6


def _timer(session: Any, s: Settings) -> Callable[[Callable[[], Any]], float]:
    if s.clock == "cpu":
        return _cpu_ms
    return session.time_call if isinstance(session, Session) else _wall_ms


def time_repeats(
    fn: Callable[[], Any],
    s: Settings,
    time_call: Callable[[Callable[[], Any]], float] = _wall_ms,
    synchronize: Callable[[], None] = lambda: None,
) -> list[float]:
    """Milliseconds of each timed call of ``fn``: ``s.warmup`` untimed calls, then at least
    ``s.min_repeats`` timed ones, more in rounds of ``min_repeats // 2`` while IQR / median is
    above ``s.rel_iqr_max``, up to ``s.max_repeats``."""
    with torch.inference_mode():
        for _ in range(s.warmup):
            fn()
        synchronize()
        times = [time_call(fn) for _ in range(s.min_repeats)]
        step = max(1, s.min_repeats // 2)
        while len(times) < s.max_repeats:
            med = statistics.median(times)
            if med <= 0 or _iqr(times) / med <= s.rel_iqr_max:
                break
            times.extend(time_call(fn) for _ in range(min(step, s.max_repeats - len(times))))
    return times


def time_forward(session: Any, ids: Any, s: Settings) -> list[float]:
    """Milliseconds of each timed prefill pass ``session(ids)`` (``time_repeats``)."""
    sync = session.synchronize if isinstance(session, Session) else (lambda: None)
    return time_repeats(lambda: session(ids), s, _timer(session, s), sync)


def time_decode(session: Session, context: Any, tokens: Sequence[Any], s: Settings) -> list[float]:
    """Milliseconds per generated token of each timed decode: the cache of ``context`` is built
    once (untimed), then each timed call feeds ``tokens`` one at a time, each step taking the cache
    the step before returned. The tokens are fixed rather than sampled from the logits, so no
    timed call waits on a result it needs before the next step."""
    _, start = session.step(context, None)

    def decode() -> None:
        past = start
        for token in tokens:
            _, past = session.step(token, past)

    return [t / len(tokens) for t in time_repeats(decode, s, _timer(session, s), session.synchronize)]


def _stats(times: Sequence[float]) -> tuple[float, float]:
    return float(statistics.median(times)), _iqr(times)


def measure(spec: ArchSpec, s: Settings) -> dict[str, Any]:
    """Measure one architecture on the target's runtime: prefill and (causal backbones) decode
    latency with their protocol, and the peak memory of the prefill pass. ``latency_ms`` and
    ``latency_iqr_ms`` repeat the statistics of ``s.latency``."""
    causal = spec.plugin.causal
    if s.seq_len > spec.max_seq_len:
        raise ValueError(f"profile.seq_len: {s.seq_len} exceeds the architecture's max_seq_len={spec.max_seq_len}")
    if s.latency == "decode" and not causal:
        raise ValueError(
            f"profile.latency: decode needs a causal backbone; {spec.backbone} is not one "
            "(measure it with latency: prefill)"
        )
    if causal and s.context + s.decode_tokens > spec.max_seq_len:
        raise ValueError(
            f"profile.context + profile.decode_tokens: {s.context} + {s.decode_tokens} tokens "
            f"exceed the architecture's max_seq_len={spec.max_seq_len}"
        )
    torch.set_num_threads(s.threads)
    t0 = time.perf_counter()
    session = prepare_model(spec, s)
    gen = torch.Generator().manual_seed(s.seed)
    ids = session.inputs(torch.randint(0, spec.vocab_size, (s.batch, s.seq_len), generator=gen))
    weights = session.weight_bytes()
    prefill = time_forward(session, ids, s)
    decode: list[float] = []
    if causal:
        context = torch.randint(0, spec.vocab_size, (s.batch, s.context), generator=gen)
        tokens = torch.randint(0, spec.vocab_size, (s.decode_tokens, s.batch, 1), generator=gen)
        decode = time_decode(session, session.inputs(context), [session.inputs(t) for t in tokens], s)
    peak = transient = float("nan")
    if s.memory:
        peak_bytes, transient_bytes = session.peak_bytes(ids, weights)
        peak, transient = peak_bytes / 2**20, transient_bytes / 2**20
    check_error = getattr(session, "check_error", None)
    del session
    gc.collect()
    objective = prefill if s.latency == "prefill" else decode
    nan = float("nan")
    return {
        "arch_id": spec.arch_id,
        "latency_ms": _stats(objective)[0],
        "latency_iqr_ms": _stats(objective)[1],
        "latency_mean_ms": float(statistics.fmean(objective)),
        "latency_min_ms": float(min(objective)),
        "repeats": len(objective),
        "prefill_ms": _stats(prefill)[0],
        "prefill_iqr_ms": _stats(prefill)[1],
        "prefill_min_ms": float(min(prefill)),
        "prefill_repeats": len(prefill),
        "decode_ms_per_token": _stats(decode)[0] if decode else nan,
        "decode_iqr_ms": _stats(decode)[1] if decode else nan,
        "decode_min_ms_per_token": float(min(decode)) if decode else nan,
        "decode_repeats": len(decode),
        "peak_memory_mb": float(peak),
        "weights_mb": weights / 2**20,
        "activation_peak_mb": float(transient),
        "measure_seconds": time.perf_counter() - t0,
        "forward_ms_total": float(sum(prefill)),
        # the relative error of the runtime's logits against PyTorch's, checked before timing
        "check_error": nan if check_error is None else float(check_error),
        # the protocol every number above was measured under
        **protocol(s, causal),
        **get_runtime(s.runtime).versions(),
    }


def protocol(s: Settings, causal: bool = True) -> dict[str, Any]:
    """The settings a measurement's numbers depend on, as table columns."""
    return {
        "latency_kind": s.latency,
        "clock": s.clock,
        "runtime": s.runtime,
        "device": s.device,
        "dtype": s.dtype,
        "threads": s.threads,
        "batch": s.batch,
        "seq_len": s.seq_len,
        "context": s.context if causal else 0,
        "decode_tokens": s.decode_tokens if causal else 0,
        "warmup": s.warmup,
    }


RENAMED = {"onnx_check_error": "check_error"}  # measurement columns cached under an older name


def ordered(result: Mapping[str, Any]) -> dict[str, Any]:
    """``arch_id`` first, then the other keys sorted (older names renamed): tables have the same
    columns in the same order whether their rows were measured now or read from the cache."""
    result = {RENAMED.get(k, k): v for k, v in result.items()}
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
        return ordered(result)

    def __call__(self, spec: ArchSpec) -> dict[str, Any]:
        """The measurement of ``spec``: from the cache if there, else measured and cached."""
        hit = self.lookup(spec.arch_id)
        if hit is not None:
            self.cache_hits += 1
            return hit
        result = ordered(self.measure_fn(spec, self.settings))
        problem = measurement_problem(result, self.settings.memory)
        if problem:
            raise ValueError(
                f"hardware target {self.hardware!r}: measuring {spec.arch_id} gave {problem}; nothing was cached"
            )
        self.measured += 1
        path = self.cache_path(spec.arch_id)
        if path is not None:
            entry = {
                "key": self._key_base,
                "result": result,
                "spec": spec.to_json(),
                "hardware": self.hardware,
                "created": time.time(),
            }
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(entry, sort_keys=True, default=str))
        log.info(
            "measured %s: %.3f ms (IQR %.3f, %s runs), %.1f MB",
            spec.arch_id,
            result["latency_ms"],
            result["latency_iqr_ms"],
            result.get("repeats"),
            result["peak_memory_mb"],
        )
        return result

    def table(self, specs: Iterable[ArchSpec]) -> pd.DataFrame:
        return pd.DataFrame([self(spec) for spec in specs])

    def counts(self) -> dict[str, int]:
        return {"measured": self.measured, "cache_hits": self.cache_hits, "invalid_entries": self.invalid_entries}


def settings_from_params(part: Mapping[str, Any]) -> Settings:
    return Settings.from_parts(part["hardware"], part["profile"])
