"""The CUDA runtime: eager PyTorch on the GPU, timed with CUDA events around each pass; peak
memory is ``max_memory_allocated`` of one pass (weights and input included)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from . import RUNTIMES, Runtime


class CUDA(Runtime):
    device = "cuda"

    def check(self, name: str, target: Mapping[str, Any]) -> None:
        import torch

        if target.get("quantize") == "dynamic_int8":
            raise ValueError(f"hardware target {name!r}: dynamic_int8 quantization runs on device cpu only")
        if not torch.cuda.is_available():
            raise ValueError(
                f"hardware target {name!r}: needs a CUDA GPU, but none is available here "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'})"
            )

    def prepare(self, model: Any, settings: Any) -> Any:
        import torch

        if settings.dtype != "float32":
            model = model.to(getattr(torch, settings.dtype))
        return model.to("cuda")

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize()

    def time_call(self, fn: Callable[[], Any]) -> float:
        import torch

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))

    def peak_bytes(self, model: Any, ids: Any, weights: int) -> tuple[int, int]:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            out = model(ids)
            del out
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return peak, peak - weights


RUNTIMES.add("cuda", CUDA())
