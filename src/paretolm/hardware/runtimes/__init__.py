"""Hardware runtimes: how a model is run, timed and has its peak memory measured. A hardware target
names its runtime with ``runtime`` (``torch``, ``torch_int8``, ``onnxruntime``) and the device it
runs on with ``device`` (``cpu``, ``cuda``); adding a runtime is one module here that registers a
``Runtime`` in ``RUNTIMES``.

A runtime turns an eval-mode PyTorch model into a ``Session``: the model as the target ships it,
with a plain forward (prefill) and, for causal models, a cached step (decoding). ``paretolm.hardware.profiling``
times both through the session, so every runtime is measured by the same protocol.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from paretolm.core import lazy
from paretolm.core.registry import Registry

if TYPE_CHECKING:
    import torch
else:  # torch is imported on first use: reading this module (the config check, the CLI, the plugin
    # registries) does not load it
    torch = lazy.module("torch")


class Session:
    """A model prepared by a runtime. ``paretolm.hardware.profiling`` converts token ids with ``inputs``,
    times ``__call__`` (prefill) and ``step`` (one decoding call) with ``time_call``, and reads
    ``weight_bytes`` and ``peak_bytes``."""

    runtime: str = ""
    device: str = "cpu"

    def inputs(self, ids: Any) -> Any:
        """Token ids (a CPU ``torch.long`` tensor) as this session takes them."""
        return ids

    def __call__(self, ids: Any) -> Any:
        """Logits of one forward pass over ``ids`` (no cache kept)."""
        raise NotImplementedError

    def step(self, ids: Any, past: Any | None) -> tuple[Any, Any]:
        """Logits of ``ids`` after the tokens in ``past`` (None: none), and the extended cache."""
        raise NotImplementedError

    def logits(self, value: Any) -> Any:
        """Logits as a float32 numpy array (for checks, never inside a timed call)."""
        return value.detach().float().cpu().numpy()

    def time_call(self, fn: Callable[[], Any]) -> float:
        """Milliseconds of one call of ``fn`` (wall clock; asynchronous devices override)."""
        t0 = time.perf_counter_ns()
        fn()
        return (time.perf_counter_ns() - t0) / 1e6

    def synchronize(self) -> None:
        """Wait for queued work (asynchronous devices)."""

    def weight_bytes(self) -> int:
        raise NotImplementedError

    def peak_bytes(self, ids: Any, weights: int) -> tuple[int, int]:
        """(peak bytes of one forward pass, the part of it allocated by the pass itself)."""
        raise NotImplementedError


class Runtime:
    """Base class of a runtime: what it supports, and how it loads a model into a ``Session``.

    ``devices`` and ``dtypes`` become the config schema's enums; ``tolerance`` is, per dtype, the
    relative error of its logits against the eager float32 model's (``relative_error``) that the
    runtime's own check before timing and the registry-wide tests allow; ``supports`` says which
    backbones it runs."""

    name: str = ""
    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[str, ...] = ("float32",)
    tolerance: Mapping[str, float] = {"float32": 1e-5}

    def supports(self, spec: Any) -> str | None:
        """Why this runtime cannot run ``spec`` (None: it can)."""
        return None

    def check(self, name: str, target: Mapping[str, Any]) -> None:
        """Raise ValueError naming target ``name`` and what is missing if this machine cannot run
        it. ``target`` has ``runtime``, ``device`` and ``dtype`` resolved (``resolve``)."""
        if target["device"] not in self.devices:
            raise ValueError(
                f"hardware target {name!r}: runtime {self.name} runs on device "
                f"{' or '.join(self.devices)}, not {target['device']!r}"
            )
        if target["dtype"] not in self.dtypes:
            raise ValueError(
                f"hardware target {name!r}: runtime {self.name} runs dtype "
                f"{' or '.join(self.dtypes)}, not {target['dtype']!r}"
            )

    def load(self, model: Any, settings: Any) -> Session:
        """The eval-mode ``model`` as the target runs it."""
        raise NotImplementedError

    def versions(self) -> dict[str, str]:
        """Versions of the libraries that run the model (recorded with every measurement)."""
        return {"torch_version": torch.__version__}


RUNTIMES: Registry[Runtime] = Registry("runtime", package=__name__)

CHECK_TOKENS = 8  # prompt tokens of the logits check before a session is timed


def resident_memory_kib(field: str = "VmRSS") -> int:
    """A field of this process's ``/proc/self/status`` in KiB (Linux): ``VmRSS``, ``VmHWM``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise ValueError(f"/proc/self/status has no {field}")


def resident_peak_bytes(fn: Callable[[], Any]) -> int:
    """Resident memory ``fn()`` adds to the process at its high point (Linux only): the peak of
    a runtime that allocates outside PyTorch, where the profiler cannot see it."""
    before = resident_memory_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size
    fn()
    return max(0, resident_memory_kib("VmHWM") - before) * 1024


def relative_error(got: Any, want: Any) -> float:
    """``||got - want|| / ||want - mean(want)||``, the mean over the vocabulary axis: 0 for equal
    logits, about 1 for zeros; measured against the spread of the logits, not their offset, since
    log-probabilities (adaptive softmax) sit far from zero."""
    centred = want - want.mean(axis=-1, keepdims=True)
    return float(np.linalg.norm(got - want) / max(float(np.linalg.norm(centred)), 1e-30))


def check_logits(
    session: Session, model: Any, runtime: str, dtype: str, tolerance: float, *, causal: bool, seed: int = 0
) -> float:
    """Compare the session's logits with the eager ``model``'s on a prefill of ``CHECK_TOKENS``
    tokens and (causal models) two decoding steps with the session's cache; returns the relative
    error, ValueError above ``tolerance`` (a runtime never times a model that computes something
    else)."""
    vocab_size = model.spec.vocab_size
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (1, CHECK_TOKENS + 2), generator=gen)
    with torch.inference_mode():
        want = model(ids if causal else ids[:, :CHECK_TOKENS]).logits.float().numpy()
    if not causal:
        got = session.logits(session(session.inputs(ids[:, :CHECK_TOKENS])))
    else:
        parts, past = [], None
        for chunk in (ids[:, :CHECK_TOKENS], ids[:, CHECK_TOKENS : CHECK_TOKENS + 1], ids[:, CHECK_TOKENS + 1 :]):
            logits, past = session.step(session.inputs(chunk), past)
            parts.append(session.logits(logits))
        got = np.concatenate(parts, axis=1)
    if got.shape != want.shape:
        raise ValueError(
            f"{runtime}: the model returns logits of shape {got.shape}, PyTorch {want.shape}; refusing to time it"
        )
    err = relative_error(got, want)
    if not err <= tolerance:  # also catches NaN
        raise ValueError(
            f"{runtime}: the {dtype} model's logits differ from PyTorch's (relative error {err:.3g} "
            f"> {tolerance:g}); refusing to time it"
        )
    return err


def resolve(target: Mapping[str, Any]) -> dict[str, Any]:
    """``target`` with ``runtime``, ``device`` and ``dtype`` filled in; the older spelling
    ``quantize: dynamic_int8`` means ``runtime: torch_int8`` (ValueError if it names another)."""
    out = dict(target)
    out.setdefault("device", "cpu")
    out["dtype"] = out.get("dtype") or "float32"
    runtime = out.get("runtime") or "torch"
    if out.get("quantize") == "dynamic_int8":
        if runtime not in ("torch", "torch_int8"):
            raise ValueError(f"quantize: dynamic_int8 is runtime torch_int8; it cannot go with runtime {runtime}")
        runtime = "torch_int8"
    elif out.get("quantize") is not None:
        raise ValueError(f"quantize: {out['quantize']!r} is not null or dynamic_int8")
    out["runtime"], out["quantize"] = runtime, None
    return out


def get(runtime: str) -> Runtime:
    return RUNTIMES.get(runtime)


__all__ = [
    "CHECK_TOKENS",
    "RUNTIMES",
    "Runtime",
    "Session",
    "check_logits",
    "get",
    "relative_error",
    "resident_memory_kib",
    "resident_peak_bytes",
    "resolve",
]
