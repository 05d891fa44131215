"""GPT-2 backbone (LTS's heterogeneous space): pre-LN layers with per-layer heads and FFN widths,
learned positions, GELU, and LTS's adaptive embedding / softmax when ``div_val > 1``.

Genes: ``n_layer``, ``d_model``, per-layer ``n_head`` and ``d_inner``, ``div_val`` (default 1),
``d_embed`` (default ``d_model``), ``cutoffs`` (default LTS's, below ``vocab_size``).
"""

from __future__ import annotations

from paretolm.core.backbones import BACKBONES, Backbone
from paretolm.core.blocks import Attention, Block, FeedForward
from paretolm.core.counting import adaptive_side, stack, totals
from paretolm.core.genes import adaptive, stacked, trim_cutoffs


class GPT2(Backbone):
    name = "gpt2"
    genes = ("n_layer", "d_model", "n_head", "d_inner", "div_val", "d_embed", "cutoffs")
    model = "paretolm.models.gpt2:GPT2LM"
    activation = "gelu_tanh"

    example = {
        "backbone": "gpt2",
        "n_layer": 2,
        "d_model": 32,
        "n_head": [2, 4],
        "d_inner": [48, 64],
        "div_val": 2,
        "vocab_size": 300,
        "cutoffs": [100, 200],
        "max_seq_len": 64,
    }

    def normalise(self, genes, common):
        out = stacked(genes, self.name)
        out.update(adaptive(genes, out["d_model"], common["vocab_size"]))
        return out

    def blocks(self, spec):
        d = spec.d_model
        return [
            Block(d, Attention(h, d // h), FeedForward(f, self.activation))
            for h, f in zip(spec.n_head, spec.d_inner, strict=True)
        ]

    def breakdown(self, spec, seq_len):
        d = spec.d_model
        embedding, embed_flops = adaptive_side(spec, seq_len, adaptive_head=(spec.get("div_val") or 1) > 1)
        return totals(
            stack(self.blocks(spec), seq_len),
            decoder_extra=2 * d,  # the final LayerNorm
            embedding=embedding,
            positions=spec.max_seq_len * d,
            embed_head_flops=embed_flops,
        )

    def retarget(self, spec, vocab_size, max_seq_len):
        return spec.with_(vocab_size=vocab_size, max_seq_len=max_seq_len, cutoffs=trim_cutoffs(spec, vocab_size))


BACKBONES.add("gpt2", GPT2())
