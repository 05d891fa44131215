"""How a target is measured: the profile section (``ProfileSettings``, from which the schema's
``profile`` block is generated) and the settings of one target's measurements (``Settings``: the
profile section with the target's runtime, device, dtype and threads), which key the measurement
cache. No torch: the config check reads this module."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from paretolm.core.settings import check, setting
from paretolm.hardware.runtimes import resolve


@dataclass(frozen=True)
class ProfileSettings:
    """The profile section: how every target is measured (the schema's ``profile`` block is
    generated from it)."""

    batch: int = setting(1, minimum=1, maximum=65536)
    seq_len: int = setting(192, minimum=1, maximum=1048576)
    latency: Literal["prefill", "decode"] = setting(
        "prefill",
        doc="Which latency is latency_ms, the column the search minimises: prefill (one forward pass "
        "over batch x seq_len tokens) or decode (milliseconds per generated token with the decoding cache, after "
        "a prompt of context tokens). Both are measured and recorded (decode for causal backbones only).",
    )
    context: int | None = setting(
        None,
        minimum=1,
        maximum=1048576,
        doc="Prompt tokens before decoding; null fills seq_len with prompt and generated tokens.",
    )
    decode_tokens: int = setting(16, minimum=1, maximum=1_000_000, doc="Tokens generated per timed decode.")
    clock: Literal["wall", "cpu"] = setting(
        "wall",
        doc="wall: elapsed time (perf_counter; CUDA events on a GPU). cpu: the process's CPU time, for "
        "one-thread CPU targets on a machine shared with other work, which delays elapsed time but barely "
        "changes CPU time.",
    )
    warmup: int = setting(3, minimum=0, maximum=10000)
    min_repeats: int = setting(10, minimum=10, maximum=100000)
    max_repeats: int = setting(40, minimum=10, maximum=100000)
    rel_iqr_max: float = setting(
        0.05,
        exclusive_minimum=0,
        maximum=100,
        doc="Repeat until the IQR is at most this fraction of the median (or max_repeats).",
    )
    memory: bool = setting(True)
    cache: str = setting("results/cache/measurements", doc="The measurement cache folder.")
    shards: int = setting(
        1,
        minimum=1,
        maximum=10000,
        doc="Profile jobs per target and space, each measuring "
        "every shards-th sample, gathered into one table (a cluster measures them on as many "
        "nodes at once). Changes no measurement.",
    )

    def __post_init__(self) -> None:
        check(self, "profile")


@dataclass(frozen=True)
class Settings:
    """How to measure: the profile config section plus the hardware target (routing excluded).

    ``runtime`` runs the model (``paretolm.hardware.runtimes``); ``quantize: dynamic_int8`` is the older
    spelling of ``runtime: torch_int8`` and is folded into it. Prefill is one forward pass over
    ``batch`` x ``seq_len`` tokens; decode is the time per token of generating ``decode_tokens``
    tokens one at a time with the decoding cache after a prompt of ``context`` tokens (None: the
    prompt and the generated tokens fill ``seq_len``, at most ``seq_len - 1`` generated). Both are
    measured (decode for causal backbones only); ``latency`` names the one reported as
    ``latency_ms``, the column the search minimises."""

    device: str = "cpu"
    runtime: str = "torch"
    dtype: str = "float32"
    quantize: str | None = None
    threads: int = 1
    arch: str | None = None
    # the profile section's (ProfileSettings), defaults read from there
    batch: int = ProfileSettings.batch
    seq_len: int = ProfileSettings.seq_len
    latency: str = ProfileSettings.latency
    clock: str = ProfileSettings.clock
    context: int | None = ProfileSettings.context
    decode_tokens: int = ProfileSettings.decode_tokens
    warmup: int = ProfileSettings.warmup
    min_repeats: int = ProfileSettings.min_repeats
    max_repeats: int = ProfileSettings.max_repeats
    rel_iqr_max: float = ProfileSettings.rel_iqr_max
    memory: bool = ProfileSettings.memory
    seed: int = 0

    def __post_init__(self) -> None:
        resolved = resolve(
            {"runtime": self.runtime, "device": self.device, "dtype": self.dtype, "quantize": self.quantize}
        )
        object.__setattr__(self, "runtime", resolved["runtime"])
        object.__setattr__(self, "quantize", None)
        if self.clock not in ("wall", "cpu"):
            raise ValueError(f"profile.clock: {self.clock!r} is not wall or cpu")
        if self.clock == "cpu" and self.device != "cpu":
            raise ValueError(
                f"profile.clock: cpu times the process's CPU time, which says nothing on device "
                f"{self.device}; use clock: wall"
            )
        if self.latency not in LATENCIES:
            raise ValueError(f"profile.latency: {self.latency!r} is not one of {', '.join(LATENCIES)}")
        if self.context is None:
            object.__setattr__(self, "decode_tokens", max(1, min(self.decode_tokens, self.seq_len - 1)))
            object.__setattr__(self, "context", max(1, self.seq_len - self.decode_tokens))
        if self.context < 1 or self.decode_tokens < 1:
            raise ValueError(
                f"profile.context and profile.decode_tokens: at least 1 each, got "
                f"{self.context} and {self.decode_tokens}"
            )

    @classmethod
    def from_parts(cls, hardware: Mapping[str, Any], profile: Mapping[str, Any]) -> Settings:
        keys = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in {**hardware, **profile}.items() if k in keys}
        s = cls(**values)
        if s.min_repeats < 10:
            raise ValueError(f"profile.min_repeats: at least 10 timed runs, got {s.min_repeats}")
        if s.max_repeats < s.min_repeats:
            raise ValueError(f"profile.max_repeats: {s.max_repeats} < min_repeats={s.min_repeats}")
        return s

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


LATENCIES = ("prefill", "decode")


__all__ = ["LATENCIES", "ProfileSettings", "Settings"]
