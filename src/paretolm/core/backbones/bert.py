"""BERT backbone (SpeedLimit's space): a homogeneous post-LN encoder with an MLM head.

Genes: ``n_layer``, ``d_model``, ``n_head``, ``d_inner`` (one value each, shared by every layer).
Not causal: it is scored and measured, never evaluated as a causal LM. The encoder layers count
as the "decoder" part; embedding side: token, position and token-type embeddings, the embedding
LayerNorm and the MLM head (dense, LayerNorm, decoder bias, and the decoder weight when untied).
"""

from __future__ import annotations

from paretolm.core.backbones import BACKBONES, Backbone
from paretolm.core.blocks import Attention, Block, FeedForward
from paretolm.core.counting import stack, totals
from paretolm.core.genes import stacked

TYPE_VOCAB_SIZE = 2  # token types of the embedding (models.bert)


class Bert(Backbone):
    name = "bert"
    genes = ("n_layer", "d_model", "n_head", "d_inner")
    causal = False
    sliceable = False  # scored by masked-token loss, which the supernet does not train
    model = "paretolm.models.bert:BertMLM"

    example = {
        "backbone": "bert",
        "n_layer": 2,
        "d_model": 32,
        "n_head": 4,
        "d_inner": 48,
        "vocab_size": 300,
        "max_seq_len": 64,
    }

    def normalise(self, genes, common):
        return stacked(genes, self.name, per_layer_genes=False)

    def blocks(self, spec):
        d = spec.d_model
        block = Block(
            d, Attention(spec.n_head, d // spec.n_head, causal=False), FeedForward(spec.d_inner), pre_norm=False
        )
        return [block] * spec.n_layer

    def breakdown(self, spec, seq_len):
        t, d, v = seq_len, spec.d_model, spec.vocab_size
        embedding = (v + TYPE_VOCAB_SIZE) * d + 2 * d  # embeddings and their LayerNorm
        embedding += d * d + d + 2 * d + v  # MLM head: dense, LayerNorm, decoder bias
        if not spec.tie_weights:
            embedding += v * d
        return totals(
            stack(self.blocks(spec), t),
            embedding=embedding,
            positions=spec.max_seq_len * d,
            embed_head_flops=2 * t * d * d + 2 * t * d * v,
        )


BACKBONES.add("bert", Bert())
