"""The runtimes behind hardware targets: every registered runtime on every backbone it supports
(logits checked against PyTorch's, prefill and cached decoding, a measurement), and what each one
adds: int8 graphs, a wrong graph refused before it is timed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import check_runtime, runtime_cases

from paretolm.core.arch import ArchSpec
from paretolm.core.backbones import BACKBONES
from paretolm.hardware import profiling
from paretolm.hardware.profiling import Settings
from paretolm.hardware.runtimes import RUNTIMES, relative_error, resolve
from paretolm.hardware.runtimes import ort as ort_runtime

pytest.importorskip("onnxruntime")

FAST = dict(seq_len=24, decode_tokens=4, warmup=1, min_repeats=10, max_repeats=10, rel_iqr_max=1.0)


def example(name: str) -> ArchSpec:
    return ArchSpec.from_dict(BACKBONES.get(name).example)


def test_registered_runtimes_and_resolution() -> None:
    assert {"torch", "torch_int8", "onnxruntime"} <= set(RUNTIMES.names())
    assert resolve({"device": "cpu"})["runtime"] == "torch"
    assert resolve({"device": "cpu", "quantize": "dynamic_int8"})["runtime"] == "torch_int8"
    assert RUNTIMES.get("onnxruntime").versions()["onnxruntime_version"]


@pytest.mark.parametrize(("runtime", "dtype", "backbone"), runtime_cases())
def test_every_runtime_runs_every_backbone_it_supports(runtime: str, dtype: str, backbone: str) -> None:
    """Registry-wide: prefill and cached decoding equal the eager model's within the runtime's
    tolerance (on another batch size and length than any export traced), and a measurement."""
    check_runtime(runtime, dtype, example(backbone))


@pytest.mark.parametrize(
    ("runtime", "dtype"), [("onnxruntime", "float32"), ("onnxruntime", "int8"), ("torch_int8", "float32")]
)
def test_measure_on_each_runtime(runtime: str, dtype: str) -> None:
    spec = ArchSpec(backbone="gpt2", n_layer=2, d_model=64, n_head=4, d_inner=256, vocab_size=500, max_seq_len=64)
    r = profiling.measure(spec, Settings(runtime=runtime, dtype=dtype, **FAST))
    assert r["runtime"] == runtime and r["dtype"] == dtype and r["threads"] == 1
    assert r["prefill_ms"] > 0 and r["decode_ms_per_token"] > 0 and r["latency_ms"] == r["prefill_ms"]
    assert r["prefill_repeats"] == r["decode_repeats"] == 10 and (r["context"], r["decode_tokens"]) == (20, 4)
    assert r["peak_memory_mb"] >= r["weights_mb"] > 0
    if runtime == "onnxruntime":
        assert r["onnxruntime_version"] and 0 <= r["check_error"] < ort_runtime.OnnxRuntime.tolerance[dtype]
    else:
        assert np.isnan(r["check_error"])


def test_int8_graph_is_smaller() -> None:
    spec = ArchSpec(backbone="opt", n_layer=2, d_model=64, n_head=4, d_inner=512, vocab_size=500, max_seq_len=64)
    fp32 = profiling.prepare_model(spec, Settings(runtime="onnxruntime")).weight_bytes()
    int8 = profiling.prepare_model(spec, Settings(runtime="onnxruntime", dtype="int8")).weight_bytes()
    assert int8 < 0.5 * fp32


def test_a_graph_whose_logits_differ_is_not_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = example("gpt2")
    real_export = ort_runtime.export

    def broken_export(model, vocab_size, causal, path):
        with torch.no_grad():
            model.ln_f.weight.mul_(3.0)  # the exported graph computes something else
        layout = real_export(model, vocab_size, causal, path)
        with torch.no_grad():
            model.ln_f.weight.div_(3.0)
        return layout

    monkeypatch.setattr(ort_runtime, "export", broken_export)
    with pytest.raises(ValueError, match="logits differ from PyTorch's .* refusing to time it"):
        profiling.measure(spec, Settings(runtime="onnxruntime", **FAST))


def test_relative_error_is_against_the_spread() -> None:
    want = np.random.default_rng(0).normal(size=(1, 3, 50))
    assert relative_error(want, want) == 0.0
    assert relative_error(want + 1e-3, want) < 0.01
    assert relative_error(want - 20.0, want - 20.0) == 0.0
    assert relative_error(np.zeros_like(want), want) == pytest.approx(1.0, rel=0.1)


def test_resident_peak_sees_an_allocation() -> None:
    big = 64 * 2**20
    added = ort_runtime.resident_peak_bytes(lambda: np.ones(big // 8).sum())
    assert added >= 0.9 * big
