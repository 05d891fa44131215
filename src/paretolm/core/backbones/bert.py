"""BERT backbone (SpeedLimit's space): a homogeneous post-LN encoder with an MLM head.

Genes: ``n_layer``, ``d_model``, ``n_head``, ``d_inner`` (one value each, shared by every layer).
Not causal: it is scored and measured, never evaluated as a causal LM.
"""

from __future__ import annotations

from paretolm.core.backbones import BACKBONES, Backbone, Layer
from paretolm.core.backbones._layered import stacked


class Bert(Backbone):
    name = "bert"
    genes = ("n_layer", "d_model", "n_head", "d_inner")
    causal = False

    example = {"backbone": "bert", "n_layer": 2, "d_model": 32, "n_head": 4, "d_inner": 48,
               "vocab_size": 300, "max_seq_len": 64}

    def normalise(self, genes, common):
        return stacked(genes, self.name, per_layer_genes=False)

    def layers(self, spec):
        d = spec.d_model
        return [Layer(d, spec.n_head, spec.d_inner, d) for _ in range(spec.n_layer)]

    def build(self, spec, dropout=0.0, attn_dropout=0.0):
        from paretolm.models.bert import BertMLM

        return BertMLM(spec, dropout=dropout, attn_dropout=attn_dropout)

    def count(self, spec, seq_len):
        from paretolm.core.counting.blocks import count_bert

        return count_bert(spec, seq_len)


BACKBONES.add('bert', Bert())
