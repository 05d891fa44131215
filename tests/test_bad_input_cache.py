"""The measurement cache is checked on read: a damaged or impossible entry is reported, measured
again and replaced; an impossible fresh measurement is refused before it is cached."""

from __future__ import annotations

import json
import logging

import pytest

from paretolm.core.arch import ArchSpec
from paretolm.hardware.profiling import Profiler, Settings

SPEC = ArchSpec("gpt2", n_layer=1, d_model=32, n_head=2, d_inner=32, vocab_size=100, max_seq_len=32)


def fake(latency: float = 2.0, memory: float = 5.0):
    calls = []

    def measure(spec, settings):
        calls.append(spec.arch_id)
        return {"arch_id": spec.arch_id, "latency_ms": latency, "latency_iqr_ms": 0.1, "peak_memory_mb": memory}

    measure.calls = calls
    return measure


@pytest.mark.parametrize(
    "damage",
    [
        lambda e: "{not json",
        lambda e: json.dumps({**e, "result": {**e["result"], "latency_ms": -1.0}}),
        lambda e: json.dumps({**e, "result": {**e["result"], "latency_ms": float("nan")}}),
        lambda e: json.dumps({**e, "result": {k: v for k, v in e["result"].items() if k != "peak_memory_mb"}}),
        lambda e: json.dumps({**e, "result": {**e["result"], "peak_memory_mb": "lots"}}),
        lambda e: json.dumps({**e, "result": None}),
        lambda e: json.dumps([1, 2]),
        lambda e: "\x00\xff binary",
    ],
    ids=["not-json", "negative", "nan", "missing", "string", "null-result", "list", "binary"],
)
def test_bad_cache_entries_are_measured_again_and_reported(tmp_path, caplog, damage) -> None:
    first = Profiler("cpu", Settings(seq_len=16), tmp_path, measure_fn=fake())
    first(SPEC)
    path = first.cache_path(SPEC.arch_id)
    path.write_text(damage(json.loads(path.read_text())))
    again = fake(latency=3.0)
    second = Profiler("cpu", Settings(seq_len=16), tmp_path, measure_fn=again)
    with caplog.at_level(logging.WARNING, logger="paretolm"):
        result = second(SPEC)
    assert result["latency_ms"] == 3.0 and again.calls == [SPEC.arch_id]
    assert second.counts() == {"measured": 1, "cache_hits": 0, "invalid_entries": 1}
    assert str(path) in caplog.text and "measuring" in caplog.text
    third = Profiler("cpu", Settings(seq_len=16), tmp_path, measure_fn=fake(latency=9.0))
    assert third(SPEC)["latency_ms"] == 3.0  # the replaced entry is good again


@pytest.mark.parametrize(
    "latency, memory", [(-1.0, 5.0), (float("nan"), 5.0), (0.0, 5.0), (2.0, -3.0), (float("inf"), 5.0)]
)
def test_impossible_fresh_measurements_are_refused(tmp_path, latency, memory) -> None:
    prof = Profiler("cpu", Settings(seq_len=16), tmp_path, measure_fn=fake(latency, memory))
    with pytest.raises(ValueError, match=rf"measuring {SPEC.arch_id} gave (latency_ms|peak_memory_mb)="):
        prof(SPEC)
    assert not prof.cache_path(SPEC.arch_id).exists()


def test_missing_memory_is_fine_when_memory_is_off(tmp_path) -> None:
    prof = Profiler("cpu", Settings(seq_len=16, memory=False), tmp_path, measure_fn=fake(memory=float("nan")))
    assert prof(SPEC)["latency_ms"] == 2.0
