"""Backbone plugins: everything paretolm knows about one architecture family, in one module each.

A backbone declares its genes and how to validate them, a uniform per-layer view of its weights
(``layers``: what counting, the entropy proxy, the latency-predictor features and the data proxies
read), how to build its PyTorch model, its exact parameter and FLOP counts, and the genome codec
the search spaces use. Adding a backbone is one module in this package (or any module that calls
``BACKBONES.add``) plus a space YAML; see docs/architecture.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from paretolm.core.registry import Registry

if TYPE_CHECKING:
    import torch.nn as nn

    from paretolm.core.arch import ArchSpec

BACKBONES: Registry[Backbone] = Registry("backbone", package=__name__)


@dataclass(frozen=True)
class Counts:
    """Exact analytic counts of one spec (see docs/counting.md)."""

    decoder_params: int
    embedding_params: int
    total_params: int
    flops: int  # forward FLOPs at batch 1 and the given sequence length (2 per multiply-add)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_breakdown(cls, parts: Mapping[str, int]) -> Counts:
        """From a named breakdown holding at least the four totals."""
        return cls(parts["decoder_params"], parts["embedding_params"], parts["total_params"], parts["flops"])


@dataclass(frozen=True)
class Layer:
    """One layer (or PAR sub-layer) of a spec as every stage sees it.

    ``attn_inner`` is the attention's inner width (``n_head * d_head``; 0 when the layer has no
    attention); ``ffn`` says whether it has a feed-forward part of inner width ``d_inner``.
    ``d_inner`` and ``n_head`` are kept on every entry (PAR's attention sub-layers carry the
    model's ``d_inner``) because the latency features read them per layer. ``times`` is how often
    the layer's weights are applied (MeRino blocks share one layer's weights across their depth).
    """

    d_model: int
    n_head: int
    d_inner: int
    attn_inner: int
    ffn: bool = True
    r_net: bool = False  # Transformer-XL's relative-position projection
    times: int = 1

    @property
    def attention(self) -> bool:
        return self.attn_inner > 0


class Backbone:
    """Base class of a backbone plugin; subclasses set ``name`` and ``genes`` and override
    ``normalise``, ``layers``, ``build`` and ``count`` (and ``codec`` when its genome is not one
    gene per layer)."""

    name: str = ""
    genes: tuple[str, ...] = ()  # genes kept in the canonical form, besides the common fields
    causal: bool = True  # a causal LM (the Hugging Face wrapper and lm-eval take it)
    example: dict[str, Any] = {}  # a small valid spec; the registry-wide tests build and score it

    def normalise(self, genes: dict[str, Any], common: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``genes`` (raise ValueError naming the field), fill defaults, return the
        canonical values (per-layer genes as tuples). ``common`` holds vocab_size etc."""
        raise NotImplementedError

    def layers(self, spec: ArchSpec) -> list[Layer]:
        raise NotImplementedError

    def build(self, spec: ArchSpec, dropout: float = 0.0, attn_dropout: float = 0.0) -> nn.Module:
        raise NotImplementedError

    def count(self, spec: ArchSpec, seq_len: int) -> Counts:
        raise NotImplementedError

    def entropy_depth(self, spec: ArchSpec) -> float:
        """Depth L of MeRino's effectiveness penalty: a layer with attention and FFN counts 1,
        a PAR sub-layer with one of them 1/2 (identity sub-layers are not layers)."""
        return sum(layer.times * (layer.attention + layer.ffn) for layer in self.layers(spec)) / 2.0

    def retarget(self, spec: ArchSpec, vocab_size: int, max_seq_len: int) -> ArchSpec:
        """The same architecture for another vocabulary and context length."""
        return spec.with_(vocab_size=vocab_size, max_seq_len=max_seq_len)

    @property
    def codec(self) -> Any:
        """The genome codec of the search spaces (``paretolm.core.spaces.LayerCodec`` by default)."""
        from paretolm.core.spaces import LayerCodec

        return LayerCodec()

    def __repr__(self) -> str:
        return f"<backbone {self.name}>"


def get(name: str) -> Backbone:
    """The backbone plugin called ``name`` (ValueError listing the known ones)."""
    return BACKBONES.get(name)


# -- gene validation helpers every backbone uses -----------------------------------------------
# Upper bounds of integer genes (docs/backbones.md): far beyond any model these spaces describe,
# low enough that a typo cannot allocate gigabytes before failing.
LIMITS: dict[str, int] = {
    "n_layer": 1024, "n_block": 256, "d_model": 65536, "d_embed": 65536, "d_inner": 262144,
    "n_head": 1024, "d_head": 4096, "div_val": 64, "vocab_size": 2**21, "max_seq_len": 2**20,
    "mem_len": 2**20,
}


def _bounded(value: int, name: str) -> int:
    base = name.rsplit(".", 1)[-1].split("[", 1)[0]  # blocks[0].n_layer -> n_layer, d_inner[3] -> d_inner
    limit = LIMITS.get(base)
    if limit is not None and value > limit:
        raise ValueError(f"{name}: {value} is above the limit of {limit}")
    return value


def integer(value: Any, name: str) -> int:
    """An integer gene (a float with an integral value is accepted; booleans are not)."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    return value


def positive(genes: Mapping[str, Any], name: str, backbone: str) -> int:
    value = genes.get(name)
    if value is None:
        raise ValueError(f"{name}: missing (required by backbone {backbone!r})")
    value = integer(value, name)
    if value <= 0:
        raise ValueError(f"{name}: must be positive, got {value}")
    return _bounded(value, name)


def boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    return value


def per_layer(value: Any, n_layer: int, name: str) -> tuple[int, ...]:
    """A per-layer gene: a scalar (broadcast) or a list of ``n_layer`` positive integers."""
    if value is None:
        raise ValueError(f"{name}: missing")
    if isinstance(value, (list, tuple)):
        if len(value) != n_layer:
            raise ValueError(f"{name}: has {len(value)} entries but n_layer={n_layer}")
        values = tuple(integer(v, f"{name}[{i}]") for i, v in enumerate(value))
    else:
        values = (integer(value, name),) * n_layer
    for i, v in enumerate(values):
        if v <= 0:
            raise ValueError(f"{name}[{i}]: must be positive, got {v}")
        _bounded(v, f"{name}[{i}]")
    return values


def finite_positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: must be finite and positive, got {value!r}")
    return float(value)


__all__ = ["BACKBONES", "LIMITS", "Backbone", "Counts", "Layer", "boolean", "get", "integer", "per_layer",
           "positive"]
