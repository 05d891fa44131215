"""Analytic proxies: exact counts from the spec alone (``paretolm.core.counting``), microseconds each."""

from __future__ import annotations

from paretolm.core.arch import ArchSpec
from paretolm.core.counting import count
from paretolm.proxies.base import proxy


@proxy("decoder_params", doc="LTS's proxy: parameters inside the decoder layers (no embeddings, no head).")
def decoder_params(spec: ArchSpec, seq_len: int = 192) -> float:
    return float(count(spec, seq_len).decoder_params)


@proxy("embedding_params", doc="Token and positional embedding parameters (and an untied head).")
def embedding_params(spec: ArchSpec, seq_len: int = 192) -> float:
    return float(count(spec, seq_len).embedding_params)


@proxy("total_params", doc="All parameters of the model.")
def total_params(spec: ArchSpec, seq_len: int = 192) -> float:
    return float(count(spec, seq_len).total_params)


@proxy("flops", doc="Forward FLOPs at batch 1 and the configured sequence length.")
def flops(spec: ArchSpec, seq_len: int = 192) -> float:
    return float(count(spec, seq_len).flops)
