"""PyTorch language models built from an ``ArchSpec``: the building blocks of every backbone.

``build_model(spec)`` asks the spec's backbone plugin for its module, whose
``forward(input_ids, labels=None)`` returns an ``LMOutput`` (``logits`` and, when labels are given,
the mean next-token loss; ``bert`` computes the masked-token loss over positions whose label is
not -100). Attention and feed-forward modules carry ``role = "attn"`` / ``"ffn"``, which is how the
data-dependent proxies find the weights they score.

Causal models also decode with a cache: ``forward(input_ids, past=past, use_cache=True)`` returns
``LMOutput.past`` (keys and values per attention application; Transformer-XL: its memory), which
the next call takes as ``past``, so each new token costs one position's work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paretolm.models.layers import LMOutput

if TYPE_CHECKING:
    import torch.nn as nn

    from paretolm.core.arch import ArchSpec


def build_model(spec: ArchSpec, dropout: float = 0.0, attn_dropout: float = 0.0) -> nn.Module:
    """Instantiate the model for ``spec`` (GPT-2-style initialisation, train mode)."""
    return spec.plugin.build(spec, dropout=dropout, attn_dropout=attn_dropout)


__all__ = ["LMOutput", "build_model"]
