"""Hardware runtimes: how a model runs, is timed and has its peak memory measured on one kind of
device. A hardware target names its runtime with ``device`` (``cpu``, ``cuda``); adding a device is
one module here that registers a ``Runtime`` in ``RUNTIMES``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..registry import Registry


class Runtime:
    """Base class of a runtime; ``paretolm.profiling`` calls these in this order per measurement."""

    device: str = ""

    def check(self, name: str, target: Mapping[str, Any]) -> None:
        """Raise ValueError naming target ``name`` and what is missing if this machine cannot run it."""

    def prepare(self, model: Any, settings: Any) -> Any:
        """The eval-mode model as the target runs it (dtype, quantization, device)."""
        return model

    def time_call(self, fn: Callable[[], Any]) -> float:
        """Milliseconds of one call of ``fn``."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for queued work (asynchronous devices)."""

    def peak_bytes(self, model: Any, ids: Any, weights: int) -> tuple[int, int]:
        """(peak bytes of one forward pass, the part of it allocated by the pass itself)."""
        raise NotImplementedError


RUNTIMES: Registry[Runtime] = Registry("runtime", package=__name__)


def get(device: str) -> Runtime:
    return RUNTIMES.get(device)


__all__ = ["RUNTIMES", "Runtime", "get"]
