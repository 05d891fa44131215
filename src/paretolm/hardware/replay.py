"""A deterministic stand-in device, for tests and dry runs of the search logic: never a measurement.

``ReplayDevice`` has the signature of ``paretolm.hardware.profiling.measure`` (``(spec, settings) -> dict``)
and returns the same keys, computed from the spec's analytic counts instead of timing a model:

* latency: a roofline-like cost (FLOPs at a fixed throughput, weight and activation traffic, a
  per-layer overhead) times a shape-dependent efficiency factor the counts do not explain, times
  log-normal noise seeded by ``(seed, arch_id)``: the same spec always gives the same number;
* peak memory: the weights plus the largest activation (the logits at the measured length).

Every result carries ``replay: True``, so a table built from it says so. It is injected where
the profiler is made (``paretolm.stages.search.run(..., measure_fn=ReplayDevice(...))``) and is
not a hardware target of the workflow: results from it belong in a folder of their own (its
cache entries are keyed like real ones). ``delay_s`` makes each call take real time (to interrupt
a run in the middle); ``log`` appends each measured ``arch_id`` to a file (to count calls across
processes).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paretolm.core.arch import ArchSpec
from paretolm.core.counting import count


@dataclass(frozen=True)
class ReplayDevice:
    noise: float = 0.03  # relative standard deviation of the latency noise
    seed: int = 0
    delay_s: float = 0.0
    log: str | Path | None = None
    gflops: float = 60.0  # throughput of the pretend CPU

    def _noise(self, arch_id: str) -> float:
        digest = hashlib.sha256(f"{self.seed}:{arch_id}".encode()).digest()
        return float(np.random.default_rng(int.from_bytes(digest[:8], "little")).standard_normal())

    def __call__(self, spec: ArchSpec, settings: Any) -> dict[str, Any]:
        seq_len = int(getattr(settings, "seq_len", 192))
        c = count(spec, seq_len)
        blocks = spec.block_view()
        n_layers = sum(b.times for b in blocks)
        width = max((b.d_model for b in blocks), default=spec.get("d_model", 64) or 64)
        act = seq_len * sum(b.d_model * b.times for b in blocks)
        # A shape-dependent efficiency the counts do not show (narrow matrices run slower).
        efficiency = 1.0 + 0.15 * math.cos(width / 97.0) + 0.1 * (spec.get("div_val", 1) or 1) ** 0.5
        ms = (c.flops / (self.gflops * 1e6) + 4e-6 * c.total_params + 2e-5 * act + 0.3 * n_layers) * efficiency
        ms *= math.exp(self.noise * self._noise(spec.arch_id))
        weights = 4 * c.total_params / 2**20
        activation = 4 * seq_len * max(spec.vocab_size, 4 * width) / 2**20
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.log is not None:
            with open(self.log, "a") as fh:
                fh.write(spec.arch_id + "\n")
        return {
            "arch_id": spec.arch_id,
            "latency_ms": ms,
            "latency_iqr_ms": 0.02 * ms,
            "latency_mean_ms": 1.01 * ms,
            "latency_min_ms": 0.97 * ms,
            "repeats": 10,
            "peak_memory_mb": weights + activation,
            "weights_mb": weights,
            "activation_peak_mb": activation,
            "measure_seconds": 10 * ms / 1000,
            "forward_ms_total": 10 * ms,
            "replay": True,
        }


__all__ = ["ReplayDevice"]
