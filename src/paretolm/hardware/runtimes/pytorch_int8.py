"""Runtime ``torch_int8``: eager PyTorch on the CPU with dynamically quantized int8 ``nn.Linear``
layers (weights int8, activations quantized per call), as SpeedLimit measures. Layers that are not
``nn.Linear`` (embeddings, a head tied to the embedding) stay float32."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from paretolm.core import lazy
from paretolm.hardware.runtimes import RUNTIMES, Runtime, Session
from paretolm.hardware.runtimes.pytorch import TorchSession

if TYPE_CHECKING:
    import torch
else:  # torch is imported on first use: reading this module (the config check, the CLI, the plugin
    # registries) does not load it
    torch = lazy.module("torch")


def quantize_dynamic_fn() -> Callable[..., Any]:
    """``quantize_dynamic`` from wherever this PyTorch keeps it (the API has been moving from
    ``torch.quantization`` to ``torch.ao.quantization``); ValueError if neither has it."""
    for module in ("torch.ao.quantization", "torch.quantization"):
        try:
            fn = getattr(importlib.import_module(module), "quantize_dynamic", None)
        except ImportError:
            fn = None
        if fn is not None:
            return fn
    raise ValueError(
        f"quantize: dynamic int8 quantization is not available in torch {torch.__version__} "
        "(neither torch.ao.quantization.quantize_dynamic nor torch.quantization.quantize_dynamic)"
    )


class TorchInt8(Runtime):
    name = "torch_int8"
    devices = ("cpu",)
    dtypes = ("float32",)  # of the layers that stay in floating point
    tolerance = {"float32": 0.2}  # int8 weights and activations perturb every logit

    def check(self, name: str, target: Mapping[str, Any]) -> None:
        if target["device"] != "cpu":
            raise ValueError(
                f"hardware target {name!r}: dynamic int8 quantization (runtime torch_int8) runs on device cpu only"
            )
        super().check(name, target)
        quantize_dynamic_fn()
        engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
        if not engines:
            raise ValueError(f"hardware target {name!r}: this PyTorch build has no quantized CPU engine")

    def load(self, model: Any, settings: Any) -> Session:
        return TorchSession(quantize_dynamic_fn()(model, {torch.nn.Linear}, dtype=torch.qint8), self.name)


RUNTIMES.add("torch_int8", TorchInt8())
