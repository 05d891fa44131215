"""Runtime ``onnxruntime``: the model exported to ONNX with its decoding cache as graph inputs and
outputs, run by ONNX Runtime's CPU execution provider in float32 or with dynamically quantized int8
weights (``onnxruntime.quantization.quantize_dynamic``).

A causal model is exported once as a *step* graph: ``input_ids`` plus one ``past_<i>`` tensor per
cache tensor in, ``logits`` plus ``present_<i>`` out, every length a dynamic axis. Prefill is the
step with an empty cache (zero past tokens), decoding the step with the cache of the call before,
so prefill and decode run the very graph a user ships. A non-causal model (``bert``) is exported as
its plain forward. Before a session is handed out its logits are compared with PyTorch's on the
same tokens (a prefill and two decoding steps); a mismatch raises instead of timing a wrong graph.

Peak memory: ONNX Runtime allocates outside PyTorch, so the profiler cannot see it. A second
session with its memory arena switched off runs one pass, and the process's resident high-water
mark (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` before the pass) minus the resident
memory before it is the memory the pass added at its high point (docs/hardware.md).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from paretolm.core import lazy
from paretolm.core.arch import ArchSpec
from paretolm.hardware.runtimes import RUNTIMES, Runtime, Session, check_logits, resident_peak_bytes
from paretolm.hardware.runtimes.graphs import CacheLayout, cache_layout, plain_graph, step_graph

if TYPE_CHECKING:
    import torch
else:  # declaring the runtime imports no torch; loading a model does
    torch = lazy.module("torch")

OPSET = 17
# Relative error (see ``relative_error``) the ONNX logits may have against PyTorch's: float32 only
# reorders sums; int8 weights perturb every logit by a few per cent of their spread.
TOLERANCE = {"float32": 1e-4, "int8": 0.2}


def export(model: Any, vocab_size: int, causal: bool, path: Path) -> CacheLayout | None:
    """Export ``model`` (eval mode, float32) to ``path``: the step graph of a causal model (returns
    its cache layout) or the plain forward (returns None)."""
    ids = torch.zeros(1, 2, dtype=torch.long)
    dynamic = {"input_ids": {0: "batch", 1: "tokens"}, "logits": {0: "batch", 1: "tokens"}}
    with warnings.catch_warnings():
        # the tracer warns about every Python-level shape check it records as a constant; the
        # logits check below is what tells whether the graph is right
        warnings.simplefilter("ignore")
        if not causal:
            torch.onnx.export(
                plain_graph(model),
                (ids,),
                str(path),
                input_names=["input_ids"],
                output_names=["logits"],
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
            )
            return None
        layout = cache_layout(model, vocab_size)
        # trace with a non-empty cache so every branch that concatenates the cache is recorded
        with torch.inference_mode():
            past = model(torch.zeros(1, 3, dtype=torch.long), use_cache=True).past
        flat = [t.clone() for t in layout.flatten(past)]
        n = len(flat)
        for i, axis in enumerate(layout.seq_axes):
            dynamic[f"past_{i}"] = {0: "batch", axis: "past_tokens"}
            dynamic[f"present_{i}"] = {0: "batch", axis: "total_tokens"}
        torch.onnx.export(
            step_graph(model, layout),
            (ids, *flat),
            str(path),
            input_names=["input_ids", *(f"past_{i}" for i in range(n))],
            output_names=["logits", *(f"present_{i}" for i in range(n))],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    return layout


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of every weight matrix product (ONNX Runtime's defaults)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # it advises a pre-processing pass on the root logger
    try:
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)


def initializer_bytes(path: Path) -> int:
    """Bytes of the graph's weights (its initializers)."""
    import onnx

    model = onnx.load(str(path))
    total = 0
    for init in model.graph.initializer:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
        total += itemsize * math.prod(init.dims)
    return total


def session_options(threads: int, arena: bool = True) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    so.enable_cpu_mem_arena = arena
    so.enable_mem_pattern = arena
    return so


class OrtSession(Session):
    runtime = "onnxruntime"

    def __init__(self, model_bytes: bytes, layout: CacheLayout | None, threads: int, weights: int):
        import onnxruntime as ort

        self._bytes, self.layout, self.threads, self._weights = model_bytes, layout, threads, weights
        self.check_error: float | None = None  # relative error of its logits against PyTorch's
        self.session = ort.InferenceSession(model_bytes, session_options(threads), providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]
        self._empty: dict[int, list[Any]] = {}

    def inputs(self, ids: Any) -> Any:
        import onnxruntime as ort

        return ort.OrtValue.ortvalue_from_numpy(ids.cpu().numpy())

    def empty_past(self, batch: int) -> list[Any]:
        import onnxruntime as ort

        if batch not in self._empty:
            self._empty[batch] = [
                ort.OrtValue.ortvalue_from_numpy(np.zeros((batch, *shape[1:]), np.float32))
                for shape in self.layout.empty_shapes
            ]
        return self._empty[batch]

    def step(self, ids: Any, past: Any | None) -> tuple[Any, Any]:
        if self.layout is None:
            raise ValueError("onnxruntime: a non-causal model has no decoding step")
        if past is None:
            past = self.empty_past(ids.shape()[0])
        feeds = {"input_ids": ids, **{f"past_{i}": p for i, p in enumerate(past)}}
        out = self.session.run_with_ort_values(self.outputs, feeds)
        return out[0], list(out[1:])

    def __call__(self, ids: Any) -> Any:
        if self.layout is None:
            return self.session.run_with_ort_values(self.outputs, {"input_ids": ids})[0]
        return self.step(ids, None)[0]

    def logits(self, value: Any) -> Any:
        return value.numpy()

    def weight_bytes(self) -> int:
        return self._weights

    def peak_bytes(self, ids: Any, weights: int) -> tuple[int, int]:
        import onnxruntime as ort

        fresh = ort.InferenceSession(
            self._bytes, session_options(self.threads, arena=False), providers=["CPUExecutionProvider"]
        )
        if self.layout is None:
            feeds = {"input_ids": ids}
        else:
            past = self.empty_past(ids.shape()[0])
            feeds = {"input_ids": ids, **{f"past_{i}": p for i, p in enumerate(past)}}
        transient = resident_peak_bytes(lambda: fresh.run_with_ort_values(self.outputs, feeds))
        nbytes = math.prod(ids.shape()) * 8
        return weights + transient + nbytes, transient


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    devices = ("cpu",)
    dtypes = ("float32", "int8")
    tolerance = TOLERANCE

    def check(self, name: str, target: Mapping[str, Any]) -> None:
        super().check(name, target)
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError as e:
            raise ValueError(
                f"hardware target {name!r}: runtime onnxruntime needs the onnx and onnxruntime packages ({e})"
            ) from e
        if target.get("memory", True) and not os.access("/proc/self/clear_refs", os.W_OK):
            raise ValueError(
                f"hardware target {name!r}: onnxruntime's peak memory is read from Linux's "
                "/proc/self (VmHWM), not available here; set profile.memory: false"
            )

    def load(self, model: Any, settings: Any) -> Session:
        spec: ArchSpec = model.spec
        with tempfile.TemporaryDirectory(prefix="paretolm-onnx-") as tmp:
            path = Path(tmp) / "model.onnx"
            layout = export(model, spec.vocab_size, spec.plugin.causal, path)
            if settings.dtype == "int8":
                quantize_int8(path, Path(tmp) / "model.int8.onnx")
                path = Path(tmp) / "model.int8.onnx"
            session = OrtSession(path.read_bytes(), layout, settings.threads, initializer_bytes(path))
        session.check_error = check_logits(
            session,
            model,
            self.name,
            settings.dtype,
            self.tolerance[settings.dtype],
            causal=layout is not None,
            seed=settings.seed,
        )
        return session

    def versions(self) -> dict[str, str]:
        import onnxruntime

        return {**super().versions(), "onnxruntime_version": onnxruntime.__version__}


RUNTIMES.add("onnxruntime", OnnxRuntime())
