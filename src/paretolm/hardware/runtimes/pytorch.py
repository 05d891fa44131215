"""Runtime ``torch``: eager PyTorch in float32, bfloat16 or float16 on the CPU or a CUDA GPU.

CPU passes are timed with ``perf_counter_ns`` and their peak memory read from the profiler's
allocation events; CUDA passes are timed with CUDA events and ``max_memory_allocated``
(docs/hardware.md)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from paretolm.core import lazy
from paretolm.hardware.runtimes import RUNTIMES, Runtime, Session

if TYPE_CHECKING:
    import torch
    import torch.profiler as profiler
else:  # torch is imported on first use: reading this module (the config check, the CLI, the plugin
    # registries) does not load it
    torch = lazy.module("torch")
    profiler = lazy.module("torch.profiler")


def cpu_peak_bytes(model: Any, ids: Any) -> int:
    """Peak bytes held at once by tensors allocated during one forward pass on CPU: the maximum of
    the time-ordered running sum of the profiler's ``[memory]`` events (allocations positive,
    frees negative), so freed blocks are subtracted as they are freed."""
    with (
        torch.inference_mode(),
        profiler.profile(activities=[profiler.ProfilerActivity.CPU], profile_memory=True) as prof,
    ):
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


def module_weight_bytes(model: Any) -> int:
    """Bytes of every tensor in the model's state (parameters, buffers, packed int8 weights),
    each storage counted once."""
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


class TorchSession(Session):
    """An eval-mode ``nn.Module`` on ``device``; ``step`` is its ``forward(past=, use_cache=True)``."""

    def __init__(self, model: Any, runtime: str, device: str = "cpu"):
        self.model, self.runtime, self.device = model, runtime, device

    def inputs(self, ids: Any) -> Any:
        return ids.to(self.device)

    def __call__(self, ids: Any) -> Any:
        return self.model(ids).logits

    def step(self, ids: Any, past: Any | None) -> tuple[Any, Any]:
        out = self.model(ids, past=past, use_cache=True)
        return out.logits, out.past

    def weight_bytes(self) -> int:
        return module_weight_bytes(self.model)

    def peak_bytes(self, ids: Any, weights: int) -> tuple[int, int]:
        transient = cpu_peak_bytes(self.model, ids)
        return weights + transient + ids.numel() * ids.element_size(), transient


class CudaSession(TorchSession):
    def synchronize(self) -> None:
        torch.cuda.synchronize()

    def time_call(self, fn: Callable[[], Any]) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))

    def peak_bytes(self, ids: Any, weights: int) -> tuple[int, int]:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            out = self.model(ids)
            del out
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return peak, peak - weights


class Torch(Runtime):
    name = "torch"
    devices = ("cpu", "cuda")
    dtypes = ("float32", "bfloat16", "float16")
    # an untrained model's logits spread little, and half precision rounds them by about as much
    tolerance = {"float32": 1e-5, "bfloat16": 1.0, "float16": 0.2}

    def check(self, name: str, target: Mapping[str, Any]) -> None:
        super().check(name, target)
        if target["device"] == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(
                    f"hardware target {name!r}: needs a CUDA GPU, but none is available here "
                    f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'})"
                )

    def load(self, model: Any, settings: Any) -> Session:
        if settings.dtype != "float32":
            model = model.to(getattr(torch, settings.dtype))
        if settings.device == "cuda":
            return CudaSession(model.to("cuda"), self.name, "cuda")
        return TorchSession(model, self.name)


RUNTIMES.add("torch", Torch())
