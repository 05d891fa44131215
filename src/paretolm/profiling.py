"""Latency and peak memory of one forward pass on a hardware target, with an on-disk cache.

**Latency.** The model is built from the spec, put in eval mode and (per target) cast to its
dtype, dynamically quantized (``cpu_int8``: int8 ``nn.Linear`` layers, as SpeedLimit) and moved
to its device. Under ``torch.inference_mode`` it runs ``warmup`` untimed passes on a fixed batch
of random token ids (``batch`` x ``seq_len``), then at least ``min_repeats`` timed passes; while
the relative spread (IQR / median) is above ``rel_iqr_max`` it keeps timing, in rounds of
``min_repeats // 2``, up to ``max_repeats``. Reported: the median (``latency_ms``) and the IQR
(``latency_iqr_ms``). CPU passes are timed with ``time.perf_counter_ns``; CUDA passes with CUDA
events around the pass, after a synchronisation.

**Peak memory** (``peak_memory_mb``) is the memory the forward pass needs at its high point: the
model's weights (parameters, buffers and packed int8 weights, each storage counted once, so tied
weights count once) plus the largest amount of memory that tensors allocated during the pass hold
*at the same time*. On CUDA this is ``torch.cuda.max_memory_allocated()`` after
``reset_peak_memory_stats()`` (it includes the resident weights and the input). On CPU, PyTorch's
allocator reports every allocation and free to ``torch.profiler`` when ``profile_memory=True``
(``[memory]`` events with a signed byte count); one extra pass runs under the profiler, the events
are put in time order and the running sum of their byte counts is the memory held by tensors the
pass allocated, so its maximum is the true transient peak. It is not a sum of allocations (freed
blocks are subtracted as they are freed, which is what the LTS code's sum of per-operator usage
missed), and unlike ``tracemalloc`` (blind to PyTorch's allocator) or the process's RSS high-water
mark (which includes the interpreter, imports and model construction, and allocator reuse) it
sees exactly the tensors of this pass. Memory outside PyTorch's allocator (oneDNN scratch
buffers) is not included.

**Cache.** Every measurement is a small JSON file under ``<cache>/<hardware>/``, named by the
``arch_id`` and a hash of the hardware fingerprint, the torch version and the measurement
settings, written atomically. Profiling and the search look there first, so no architecture is
measured twice on the same machine with the same settings, and a killed run resumes where it
stopped.
"""

from __future__ import annotations

import gc
import json
import logging
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
from .artifacts import atomic_path, canonical_hash, hardware_fingerprint, provenance, read_table, write_table

log = logging.getLogger("paretolm.profiling")

MEASUREMENT_COLUMNS = ("latency_ms", "latency_iqr_ms", "peak_memory_mb")
_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}
_ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64"}


# -- hardware targets -----------------------------------------------------------------------------
def _machine() -> str:
    m = platform.machine().lower()
    return _ARCH_ALIASES.get(m, m)


def quantize_dynamic_fn() -> Callable[..., Any]:
    """``quantize_dynamic`` from wherever this PyTorch keeps it (the API has been moving from
    ``torch.quantization`` to ``torch.ao.quantization``); ValueError if neither has it."""
    import importlib

    for module in ("torch.ao.quantization", "torch.quantization"):
        try:
            fn = getattr(importlib.import_module(module), "quantize_dynamic", None)
        except ImportError:
            fn = None
        if fn is not None:
            return fn
    import torch

    raise ValueError(
        f"quantize: dynamic int8 quantization is not available in torch {torch.__version__} "
        "(neither torch.ao.quantization.quantize_dynamic nor torch.quantization.quantize_dynamic)"
    )


def check_available(name: str, target: Mapping[str, Any]) -> None:
    """Raise ValueError naming the target and what is missing if this machine cannot serve it."""
    import torch

    device = target.get("device", "cpu")
    if target.get("quantize") == "dynamic_int8" and device != "cpu":
        raise ValueError(f"hardware target {name!r}: dynamic_int8 quantization runs on device cpu only")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"hardware target {name!r}: needs a CUDA GPU, but none is available here "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'})"
        )
    want = target.get("arch")
    if want and _ARCH_ALIASES.get(str(want).lower(), str(want).lower()) != _machine():
        raise ValueError(
            f"hardware target {name!r}: needs a {want} CPU, but this machine is {_machine()}; "
            "run it where that CPU is (e.g. with the cluster profile, see docs/workflow.md)"
        )
    if target.get("quantize") == "dynamic_int8":
        quantize_dynamic_fn()
        engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
        if not engines:
            raise ValueError(f"hardware target {name!r}: this PyTorch build has no quantized CPU engine")
    dtype = target.get("dtype", "float32")
    if dtype not in _DTYPES:
        raise ValueError(f"hardware target {name!r}: dtype {dtype!r} not one of {sorted(_DTYPES)}")


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
    """The model as the target runs it: eval mode, dtype, int8 linears, device."""
    import torch

    from .models import build_model

    torch.manual_seed(s.seed)
    model = build_model(spec).eval()
    if s.quantize == "dynamic_int8":
        model = quantize_dynamic_fn()(model, {torch.nn.Linear}, dtype=torch.qint8)
    elif s.dtype != "float32":
        model = model.to(getattr(torch, s.dtype))
    return model.to(s.device)


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


def _forward(model: Any, ids: Any) -> Any:
    out = model(ids)
    return out


def cpu_peak_bytes(model: Any, ids: Any) -> int:
    """Peak bytes held at once by tensors allocated during one forward pass on CPU (see module
    docstring): the maximum of the time-ordered running sum of the profiler's memory events."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = _forward(model, ids)
        del out
    events = [
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
    ]
    events.sort(key=lambda x: x[0])
    running = peak = 0
    for _, nbytes in events:
        running += nbytes
        peak = max(peak, running)
    return peak


def _iqr(values: Sequence[float]) -> float:
    q1, q3 = np.percentile(values, [25, 75])
    return float(q3 - q1)


def time_forward(model: Any, ids: Any, s: Settings) -> list[float]:
    """Milliseconds of each timed pass (after warm-up), adaptive as described above."""
    import torch

    cuda = s.device == "cuda"
    times: list[float] = []

    def one() -> float:
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            _forward(model, ids)
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end))
        t0 = time.perf_counter_ns()
        _forward(model, ids)
        return (time.perf_counter_ns() - t0) / 1e6

    with torch.inference_mode():
        for _ in range(s.warmup):
            _forward(model, ids)
        if cuda:
            torch.cuda.synchronize()
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
        if s.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            with torch.inference_mode():
                out = _forward(model, ids)
                del out
            torch.cuda.synchronize()
            peak_bytes = torch.cuda.max_memory_allocated()
            transient = peak_bytes - weights
        else:
            transient = cpu_peak_bytes(model, ids)
            peak_bytes = weights + transient + ids.numel() * ids.element_size()
        peak = peak_bytes / 2**20
        transient = transient / 2**20
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
    fingerprint: dict[str, Any] = field(default_factory=hardware_fingerprint)

    def __post_init__(self) -> None:
        import torch

        check_available(self.hardware, self.settings.to_dict())
        self._key_base = {
            "fingerprint": self.fingerprint,
            "torch": torch.__version__,
            "settings": self.settings.to_dict(),
        }
        self.key_hash = canonical_hash(self._key_base)

    def cache_path(self, arch_id: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return Path(self.cache_dir) / self.hardware / f"{arch_id}-{self.key_hash}.json"

    def lookup(self, arch_id: str) -> dict[str, Any] | None:
        path = self.cache_path(arch_id)
        if path is None or not path.exists():
            return None
        try:
            entry = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # unreadable entry: measure again (it is overwritten atomically)
        if entry.get("key") != self._key_base or entry.get("result", {}).get("arch_id") != arch_id:
            return None
        return dict(entry["result"])

    def __call__(self, spec: ArchSpec) -> dict[str, Any]:
        """The measurement of ``spec``: from the cache if there, else measured and cached."""
        hit = self.lookup(spec.arch_id)
        if hit is not None:
            self.cache_hits += 1
            return hit
        result = self.measure_fn(spec, self.settings)
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
        return {"measured": self.measured, "cache_hits": self.cache_hits}


def settings_from_params(part: Mapping[str, Any]) -> Settings:
    return Settings.from_parts(part["hardware"], part["profile"])


def run_profile(hardware: str, samples: str | Path, proxies: str | Path, params: str | Path,
                cache_dir: str | Path | None, out: str | Path) -> pd.DataFrame:
    """Stage 3: measure every sampled architecture on ``hardware``; proxy columns alongside."""
    from .workflow import read_params

    part = read_params(params)
    profiler = Profiler(hardware, settings_from_params(part), cache_dir)
    sample_df = read_table(samples)
    specs = [ArchSpec.from_json(s) for s in sample_df["spec"]]
    t0 = time.perf_counter()
    meas = profiler.table(specs)
    proxy_df = read_table(proxies)
    proxy_cols = [c for c in proxy_df.columns if c == "arch_id" or not c.endswith("_seconds")]
    df = meas.merge(proxy_df[proxy_cols], on="arch_id", how="left", validate="one_to_one")
    df.insert(1, "spec", sample_df["spec"].to_numpy())
    prov = provenance("profile", part, [samples, proxies, params], wildcards={"hardware": hardware},
                      measurements=profiler.counts(), measurement_key=profiler.key_hash,
                      seconds=time.perf_counter() - t0)
    write_table(df, out, prov)
    log.info("profiled %d architectures on %s: %s", len(df), hardware, profiler.counts())
    return df
