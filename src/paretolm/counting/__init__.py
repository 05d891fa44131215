"""Exact analytic parameter and FLOP counts, from a spec alone (no model is built).

``count(spec, seq_len)`` returns a ``Counts`` record; ``decoder_params`` is LTS's non-embedding
count: every parameter inside the decoder layers, LayerNorms included, with token embeddings,
positional embeddings and the softmax / LM head excluded. Per-backbone counters register with
``@register("backbone")`` in ``counting.lts`` (gpt2, opt, transformer_xl) and
``counting.blocks`` (merino, par, bert). Each count is checked, to the parameter, against the
instantiated model in the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from ..arch import ArchSpec

DEFAULT_SEQ_LEN = 192


@dataclass(frozen=True)
class Counts:
    decoder_params: int
    embedding_params: int
    total_params: int
    flops: int  # forward FLOPs at batch 1 and the given sequence length (2 per multiply-add)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


_COUNTERS: dict[str, Callable[[ArchSpec, int], Counts]] = {}


def register(*backbones: str) -> Callable:
    def deco(fn: Callable[[ArchSpec, int], Counts]) -> Callable[[ArchSpec, int], Counts]:
        for b in backbones:
            _COUNTERS[b] = fn
        return fn

    return deco


def count(spec: ArchSpec, seq_len: int = DEFAULT_SEQ_LEN) -> Counts:
    if spec.backbone not in _COUNTERS:
        from . import blocks, lts  # noqa: F401  (importing registers the counters)
    if seq_len <= 0:
        raise ValueError(f"seq_len: must be positive, got {seq_len}")
    return _COUNTERS[spec.backbone](spec, seq_len)


def decoder_params(spec: ArchSpec) -> int:
    return count(spec).decoder_params


def embedding_params(spec: ArchSpec) -> int:
    return count(spec).embedding_params


def total_params(spec: ArchSpec) -> int:
    return count(spec).total_params


def flops(spec: ArchSpec, seq_len: int = DEFAULT_SEQ_LEN) -> int:
    return count(spec, seq_len).flops
