"""Backbone plugins: everything paretolm knows about one architecture family, in one module each.

A backbone declares its genes and how to validate them, its blocks (``paretolm.core.blocks``: the
per-layer description that counting, the entropy proxy, the latency-predictor features, the data
proxies and the supernet read), its exact parameter and FLOP counts, the PyTorch model class that
builds it (``model``, imported when first built, so declaring and validating never import torch)
and the genome codec the search spaces use. Adding a backbone is one module in this package (or
any module that calls ``BACKBONES.add``) plus a model and a space YAML; see docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from paretolm.core import lazy
from paretolm.core.blocks import Block
from paretolm.core.genome import LayerCodec
from paretolm.core.registry import Registry

if TYPE_CHECKING:
    import torch.nn as nn

    from paretolm.core.arch import ArchSpec

BACKBONES: Registry[Backbone] = Registry("backbone", package=__name__)


class Backbone:
    """Base class of a backbone plugin; subclasses set ``name``, ``genes``, ``example`` and
    ``model`` and override ``normalise``, ``blocks`` and ``breakdown`` (and ``codec`` when its
    genome is not one gene per layer)."""

    name: str = ""
    genes: tuple[str, ...] = ()  # genes kept in the canonical form, besides the common fields
    causal: bool = True  # a causal LM (the Hugging Face wrapper and lm-eval take it)
    sliceable: bool = True  # sub-networks are leading slices of a larger one's weights (paretolm.supernet)
    example: dict[str, Any] = {}  # a small valid spec; the registry-wide tests build and score it
    model: str = ""  # "package.module:Class" of the model; Class(spec, dropout=, attn_dropout=)
    codec: Any = LayerCodec()  # how a search space's genome maps to these genes

    def normalise(self, genes: dict[str, Any], common: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``genes`` (raise ValueError naming the field), fill defaults, return the
        canonical values (per-layer genes as tuples). ``common`` holds vocab_size etc."""
        raise NotImplementedError

    def blocks(self, spec: ArchSpec) -> list[Block]:
        """The decoder's blocks, in order (a shared block once, with its ``times``)."""
        raise NotImplementedError

    def breakdown(self, spec: ArchSpec, seq_len: int) -> dict[str, int]:
        """Named parameter and FLOP parts with the four totals (``paretolm.core.counting``)."""
        raise NotImplementedError

    def build(self, spec: ArchSpec, dropout: float = 0.0, attn_dropout: float = 0.0) -> nn.Module:
        """The PyTorch model of ``spec`` (GPT-2-style initialisation, train mode)."""
        return lazy.attribute(self.model)(spec, dropout=dropout, attn_dropout=attn_dropout)

    def retarget(self, spec: ArchSpec, vocab_size: int, max_seq_len: int) -> ArchSpec:
        """The same architecture for another vocabulary and context length."""
        return spec.with_(vocab_size=vocab_size, max_seq_len=max_seq_len)

    def __repr__(self) -> str:
        return f"<backbone {self.name}>"


def get(name: str) -> Backbone:
    """The backbone plugin called ``name`` (ValueError listing the known ones)."""
    return BACKBONES.get(name)


__all__ = ["BACKBONES", "Backbone", "get"]
