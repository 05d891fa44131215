"""Latency and memory measurement on real (tiny) models, targets, and the measurement cache."""

from __future__ import annotations

import json
import time

import pytest
import torch

from paretolm.core.arch import ArchSpec
from paretolm.hardware import profiling
from paretolm.hardware.profiling import Profiler, Settings
from paretolm.hardware.runtimes import pytorch as torch_runtime
from paretolm.hardware.runtimes import pytorch_int8 as int8_runtime

SPEC = ArchSpec(
    backbone="gpt2", n_layer=2, d_model=64, n_head=[2, 4], d_inner=[128, 256], vocab_size=1000, max_seq_len=64
)
FAST = dict(seq_len=32, warmup=1, min_repeats=10, max_repeats=12, rel_iqr_max=1.0)


def test_measure_real_model():
    r = profiling.measure(SPEC, Settings(**FAST))
    assert r["arch_id"] == SPEC.arch_id
    assert r["latency_ms"] > 0 and r["latency_iqr_ms"] >= 0 and 10 <= r["repeats"] <= 12
    # weights: 4 bytes per parameter, the tied head counted once
    n_params = sum(p.numel() for p in profiling.prepare_model(SPEC, Settings(**FAST)).model.parameters())
    assert r["weights_mb"] * 2**20 >= 4 * n_params
    # the pass holds at least its logits (batch x seq x vocab floats) at its peak
    assert r["activation_peak_mb"] * 2**20 >= 32 * 1000 * 4
    assert r["peak_memory_mb"] > r["weights_mb"] + r["activation_peak_mb"] - 1e-9
    # prefill is the objective by default; decode is recorded beside it, with the protocol
    assert r["latency_ms"] == r["prefill_ms"] and r["decode_ms_per_token"] > 0 and r["decode_repeats"] >= 10
    assert (r["runtime"], r["dtype"], r["latency_kind"], r["seq_len"], r["context"]) == (
        "torch",
        "float32",
        "prefill",
        32,
        16,
    )
    assert r["torch_version"] == torch.__version__


def test_decode_latency_as_the_objective():
    s = Settings(**{**FAST, "latency": "decode", "memory": False})
    r = profiling.measure(SPEC, s)
    assert r["latency_ms"] == r["decode_ms_per_token"] and r["latency_iqr_ms"] == r["decode_iqr_ms"]
    assert r["decode_ms_per_token"] > 0 and r["repeats"] == r["decode_repeats"]
    bert = ArchSpec(backbone="bert", n_layer=1, d_model=32, n_head=2, d_inner=64, vocab_size=100, max_seq_len=64)
    with pytest.raises(ValueError, match="profile.latency: decode needs a causal backbone"):
        profiling.measure(bert, s)
    prefill_only = profiling.measure(bert, Settings(**{**FAST, "memory": False}))
    assert prefill_only["decode_repeats"] == 0 and prefill_only["context"] == 0
    with pytest.raises(ValueError, match="profile.context"):
        profiling.measure(SPEC, Settings(**{**FAST, "context": 60}))
    with pytest.raises(ValueError, match="profile.latency"):
        Settings(latency="first_token")


class Sequential(torch.nn.Module):
    """Twenty 1 MiB allocations (ones + sum per step), each step's dropped after the next: at most
    three live at once (previous result, ones, new result), so the peak is 3 MiB, the sum 20."""

    def forward(self, x):
        y = x
        for _ in range(10):
            y = torch.ones(2**18) + y.sum()
        return y


class Holding(torch.nn.Module):
    """Allocates ten 1 MiB tensors and keeps all of them until it returns (peak >= 10 MiB)."""

    def forward(self, x):
        keep = [torch.ones(2**18) + x.sum() for _ in range(10)]
        return torch.stack(keep).sum()


def test_cpu_peak_is_a_true_peak_not_a_sum():
    x = torch.zeros(4)
    seq = torch_runtime.cpu_peak_bytes(Sequential(), x)
    hold = torch_runtime.cpu_peak_bytes(Holding(), x)
    mib = 2**20
    assert 2 * mib <= seq <= 3.5 * mib
    assert hold >= 10 * mib


def test_tied_weights_counted_once_and_int8_is_smaller():
    tied = profiling.weight_bytes(profiling.prepare_model(SPEC, Settings()))
    untied = profiling.weight_bytes(profiling.prepare_model(SPEC.with_(tie_weights=False), Settings()))
    assert untied - tied == 1000 * 64 * 4
    big = SPEC.with_(d_inner=[2048, 2048])
    fp32 = profiling.weight_bytes(profiling.prepare_model(big, Settings()))
    int8 = profiling.weight_bytes(profiling.prepare_model(big, Settings(runtime="torch_int8")))
    assert int8 < 0.6 * fp32
    r = profiling.measure(big, Settings(runtime="torch_int8", **FAST))
    assert r["latency_ms"] > 0 and r["weights_mb"] * 2**20 == pytest.approx(int8) and r["runtime"] == "torch_int8"


def test_cpu_clock_counts_compute_not_waiting():
    assert profiling._cpu_ms(lambda: time.sleep(0.05)) < 10 <= profiling._wall_ms(lambda: time.sleep(0.05))
    r = profiling.measure(SPEC, Settings(**{**FAST, "clock": "cpu", "memory": False}))
    assert r["clock"] == "cpu" and r["prefill_ms"] > 0 and r["decode_ms_per_token"] > 0
    with pytest.raises(ValueError, match="profile.clock: cpu times the process's CPU time"):
        Settings(device="cuda", clock="cpu")


def test_quantize_is_the_older_spelling_of_torch_int8():
    assert Settings(quantize="dynamic_int8") == Settings(runtime="torch_int8")
    assert Settings(quantize="dynamic_int8").to_dict()["quantize"] is None
    with pytest.raises(ValueError, match="quantize: dynamic_int8 is runtime torch_int8"):
        Settings(runtime="onnxruntime", quantize="dynamic_int8")


def test_adaptive_repeats():
    noisy = iter([0.001, 0.004] * 100)
    s = Settings(warmup=0, min_repeats=10, max_repeats=30, rel_iqr_max=0.05)
    times = profiling.time_repeats(lambda: time.sleep(next(noisy)), s)
    assert len(times) == 30  # spread stays high: repeats up to the cap
    steady = profiling.time_repeats(
        lambda: time.sleep(0.002), s.__class__(warmup=0, min_repeats=10, max_repeats=30, rel_iqr_max=0.5)
    )
    assert len(steady) == 10


def test_targets_checked():
    arch = "x86_64" if profiling._machine() == "aarch64" else "aarch64"
    with pytest.raises(ValueError, match=f"hardware target 'arm': needs a {arch} CPU"):
        profiling.check_available("arm", {"device": "cpu", "arch": arch})
    profiling.check_available("here", {"device": "cpu", "arch": profiling._machine()})
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="hardware target 'gpu': needs a CUDA GPU"):
            profiling.check_available("gpu", {"device": "cuda"})
    with pytest.raises(ValueError, match="device cpu only"):
        profiling.check_available("q", {"device": "cuda", "quantize": "dynamic_int8"})
    with pytest.raises(ValueError, match="device cpu only"):
        profiling.check_available("q", {"device": "cuda", "runtime": "torch_int8"})
    with pytest.raises(ValueError, match="runtime onnxruntime runs dtype float32 or int8, not 'float16'"):
        profiling.check_available("o", {"device": "cpu", "runtime": "onnxruntime", "dtype": "float16"})
    with pytest.raises(ValueError, match="runtime torch runs dtype"):
        profiling.check_available("t", {"device": "cpu", "runtime": "torch", "dtype": "int8"})
    with pytest.raises(ValueError, match="unknown runtime 'tvm'"):
        profiling.check_available("x", {"device": "cpu", "runtime": "tvm"})
    with pytest.raises(ValueError, match="profile.seq_len"):
        profiling.measure(SPEC, Settings(seq_len=128))


def test_quantize_api_guarded(monkeypatch):
    assert callable(int8_runtime.quantize_dynamic_fn())
    import torch.ao.quantization as aoq
    import torch.quantization as tq

    monkeypatch.delattr(aoq, "quantize_dynamic")
    assert int8_runtime.quantize_dynamic_fn() is tq.quantize_dynamic
    monkeypatch.delattr(tq, "quantize_dynamic")
    with pytest.raises(ValueError, match="quantize: dynamic int8 quantization is not available"):
        int8_runtime.quantize_dynamic_fn()


def test_cache_hit_miss_and_keys(tmp_path):
    calls = []

    def fake(spec, s):
        calls.append(spec.arch_id)
        return {"arch_id": spec.arch_id, "latency_ms": 1.0, "latency_iqr_ms": 0.1, "peak_memory_mb": 2.0}

    p = Profiler("cpu", Settings(**FAST), tmp_path, measure_fn=fake)
    first = p(SPEC)
    assert p(SPEC) == first and p.counts() == {"measured": 1, "cache_hits": 1, "invalid_entries": 0}
    # a new process (new Profiler) with the same settings reuses the entry
    assert Profiler("cpu", Settings(**FAST), tmp_path, measure_fn=fake)(SPEC) == first and len(calls) == 1
    # other settings or another fingerprint: another key, measured again
    Profiler("cpu", Settings(**{**FAST, "seq_len": 16}), tmp_path, measure_fn=fake)(SPEC)
    other = Profiler("cpu", Settings(**FAST), tmp_path, measure_fn=fake, fingerprint={"cpu": "elsewhere"})
    other(SPEC)
    assert len(calls) == 3
    # a corrupt entry is measured again and replaced
    path = p.cache_path(SPEC.arch_id)
    path.write_text("{not json")
    Profiler("cpu", Settings(**FAST), tmp_path, measure_fn=fake)(SPEC)
    assert len(calls) == 4 and json.loads(path.read_text())["result"]["arch_id"] == SPEC.arch_id
    assert not list(tmp_path.rglob("*.tmp"))
