"""PyTorch language models built from an ``ArchSpec``: one module per backbone.

``build_model(spec)`` returns an ``nn.Module`` whose ``forward(input_ids, labels=None)`` returns a
``LMOutput`` (``logits`` and, when labels are given, the mean next-token loss; ``bert`` computes the
masked-token loss over positions whose label is not -100). Each backbone module registers its
class with ``@register("name")``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch.nn as nn

from ..arch import ArchSpec
from .layers import LMOutput

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_MODULES = {
    "gpt2": "gpt2",
    "opt": "gpt2",
    "transformer_xl": "transformer_xl",
    "merino": "merino",
    "par": "par",
    "bert": "bert",
}


def register(backbone: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        _BUILDERS[backbone] = cls
        return cls

    return deco


def build_model(spec: ArchSpec, dropout: float = 0.0, attn_dropout: float = 0.0) -> nn.Module:
    """Instantiate the model for ``spec`` (GPT-2-style initialisation, train mode)."""
    if spec.backbone not in _BUILDERS:
        importlib.import_module(f"{__name__}.{_MODULES[spec.backbone]}")
    return _BUILDERS[spec.backbone](spec, dropout=dropout, attn_dropout=attn_dropout)


__all__ = ["LMOutput", "build_model", "register"]
