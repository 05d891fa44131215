"""The CPU runtime: eager PyTorch in float32 / bfloat16 / float16 or with dynamic int8 linears,
timed with ``perf_counter_ns``; peak memory from the profiler's allocation events (docs/hardware.md)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from . import RUNTIMES, Runtime


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


def cpu_peak_bytes(model: Any, ids: Any) -> int:
    """Peak bytes held at once by tensors allocated during one forward pass on CPU: the maximum of
    the time-ordered running sum of the profiler's ``[memory]`` events (allocations positive,
    frees negative), so freed blocks are subtracted as they are freed."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = model(ids)
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


class CPU(Runtime):
    device = "cpu"

    def check(self, name: str, target: Mapping[str, Any]) -> None:
        if target.get("quantize") == "dynamic_int8":
            import torch

            quantize_dynamic_fn()
            engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
            if not engines:
                raise ValueError(f"hardware target {name!r}: this PyTorch build has no quantized CPU engine")

    def prepare(self, model: Any, settings: Any) -> Any:
        import torch

        if settings.quantize == "dynamic_int8":
            return quantize_dynamic_fn()(model, {torch.nn.Linear}, dtype=torch.qint8)
        if settings.dtype != "float32":
            return model.to(getattr(torch, settings.dtype))
        return model

    def time_call(self, fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter_ns()
        fn()
        return (time.perf_counter_ns() - t0) / 1e6

    def peak_bytes(self, model: Any, ids: Any, weights: int) -> tuple[int, int]:
        transient = cpu_peak_bytes(model, ids)
        return weights + transient + ids.numel() * ids.element_size(), transient


RUNTIMES.add("cpu", CPU())
