"""OPT backbone: GPT-2's pre-LN stack with ReLU feed-forward layers and a plain tied embedding.

Genes: ``n_layer``, ``d_model``, per-layer ``n_head`` and ``d_inner``.
"""

from __future__ import annotations

from . import BACKBONES, Backbone, Counts, Layer
from ._layered import stacked


class OPT(Backbone):
    name = "opt"
    genes = ("n_layer", "d_model", "n_head", "d_inner")

    example = {"backbone": "opt", "n_layer": 2, "d_model": 32, "n_head": [2, 4], "d_inner": [48, 64],
               "vocab_size": 300, "max_seq_len": 64}

    def normalise(self, genes, common):
        return stacked(genes, self.name)

    def layers(self, spec):
        d = spec.d_model
        return [Layer(d, h, f, d) for h, f in zip(spec.n_head, spec.d_inner, strict=True)]

    def build(self, spec, dropout=0.0, attn_dropout=0.0):
        from ..models.gpt2 import OPTLM

        return OPTLM(spec, dropout=dropout, attn_dropout=attn_dropout)

    def count(self, spec, seq_len):
        from ..counting.lts import gpt2_breakdown

        return Counts.from_breakdown(gpt2_breakdown(spec, seq_len))


BACKBONES.add('opt', OPT())
