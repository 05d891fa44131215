"""A model's forward as a function of flat tensors, the form exporters trace (``torch.onnx.export``
for ``onnxruntime``, ``torch.export`` for ``executorch``): the decoding cache flattened into graph
inputs and outputs (``CacheLayout``), the cached step (``step_graph``) and the plain forward of a
non-causal model (``plain_graph``). Classes are made on call, as the runtimes are declared without
torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paretolm.core import lazy

if TYPE_CHECKING:
    import torch
else:
    torch = lazy.module("torch")


@dataclass(frozen=True)
class CacheLayout:
    """How a model's cache flattens into graph tensors: per cache entry, how many tensors it holds
    (2 for keys and values, 1 for a Transformer-XL memory); per tensor, its sequence axis and the
    shape of an empty cache at batch 1."""

    widths: tuple[int, ...]
    seq_axes: tuple[int, ...]
    empty_shapes: tuple[tuple[int, ...], ...]

    def flatten(self, past: list[Any]) -> list[Any]:
        flat: list[Any] = []
        for entry in past:
            flat.extend(entry if isinstance(entry, tuple) else (entry,))
        return flat

    def unflatten(self, flat: tuple[Any, ...]) -> list[Any]:
        past, i = [], 0
        for w in self.widths:
            past.append(tuple(flat[i : i + w]) if w > 1 else flat[i])
            i += w
        return past


def cache_layout(model: Any, vocab_size: int) -> CacheLayout:
    """The layout of ``model``'s cache, found by running it on one and on two tokens: the axis whose
    length differs is the sequence axis."""
    with torch.inference_mode():
        one = model(torch.zeros(1, 1, dtype=torch.long), use_cache=True).past
        two = model(torch.zeros(1, 2, dtype=torch.long), use_cache=True).past
    widths = tuple(len(e) if isinstance(e, tuple) else 1 for e in one)
    probe = CacheLayout(widths, (), ())
    axes, shapes = [], []
    for a, b in zip(probe.flatten(one), probe.flatten(two), strict=True):
        axis = next(d for d in range(a.dim()) if a.shape[d] != b.shape[d])
        axes.append(axis)
        shapes.append(tuple(0 if d == axis else n for d, n in enumerate(a.shape)))
    return CacheLayout(widths, tuple(axes), tuple(shapes))


def step_graph(model: torch.nn.Module, layout: CacheLayout) -> torch.nn.Module:
    """``forward(input_ids, *past) -> (logits, *present)``: the cached forward with flat tensors,
    the form ``torch.onnx.export`` (and ``torch.export``) trace. A class made on call, since the
    module is declared without torch."""

    class StepGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
            out = self.model(input_ids, past=layout.unflatten(past), use_cache=True)
            return (out.logits, *layout.flatten(out.past))

    return StepGraph()


def plain_graph(model: torch.nn.Module) -> torch.nn.Module:
    """``forward(input_ids) -> logits``: the plain forward of a non-causal model."""

    class PlainGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids).logits

    return PlainGraph()


__all__ = ["CacheLayout", "cache_layout", "plain_graph", "step_graph"]
