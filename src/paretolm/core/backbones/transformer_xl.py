"""Transformer-XL backbone (LTS's second space): relative positional attention with per-layer
``r_w_bias``/``r_r_bias``, segment memory, adaptive embedding and softmax.

Genes: as ``gpt2`` plus per-layer ``d_head`` (default ``d_model // n_head``), ``mem_len``
(default 192) and ``pre_lnorm`` (default false: post-LN).
"""

from __future__ import annotations

from paretolm.core.backbones import BACKBONES, Backbone
from paretolm.core.blocks import Attention, Block, FeedForward
from paretolm.core.counting import adaptive_side, stack, totals
from paretolm.core.genes import adaptive, boolean, bounded, integer, per_layer, stacked, trim_cutoffs


class TransformerXL(Backbone):
    name = "transformer_xl"
    genes = (
        "n_layer",
        "d_model",
        "n_head",
        "d_inner",
        "div_val",
        "d_embed",
        "cutoffs",
        "d_head",
        "mem_len",
        "pre_lnorm",
    )
    model = "paretolm.models.transformer_xl:TransformerXLLM"

    example = {
        "backbone": "transformer_xl",
        "n_layer": 2,
        "d_model": 32,
        "n_head": [2, 4],
        "d_inner": [48, 64],
        "div_val": 2,
        "vocab_size": 300,
        "cutoffs": [100, 200],
        "max_seq_len": 64,
        "mem_len": 16,
    }

    def normalise(self, genes, common):
        out = stacked(genes, self.name)
        out.update(adaptive(genes, out["d_model"], common["vocab_size"]))
        if genes.get("d_head") is None:
            out["d_head"] = tuple(out["d_model"] // h for h in out["n_head"])
        else:
            out["d_head"] = per_layer(genes["d_head"], out["n_layer"], "d_head")
        mem_len = 192 if genes.get("mem_len") is None else genes["mem_len"]
        if isinstance(mem_len, bool) or not isinstance(mem_len, int) or mem_len < 0:
            raise ValueError(f"mem_len: must be a non-negative integer, got {mem_len!r}")
        out["mem_len"] = bounded(integer(mem_len, "mem_len"), "mem_len")
        out["pre_lnorm"] = boolean(False if genes.get("pre_lnorm") is None else genes["pre_lnorm"], "pre_lnorm")
        return out

    def blocks(self, spec):
        d = spec.d_model
        genes = zip(spec.n_head, spec.d_head, spec.d_inner, strict=True)
        return [
            Block(
                d, Attention(h, dh, positions="relative", bias=False), FeedForward(f, "relu"), pre_norm=spec.pre_lnorm
            )
            for h, dh, f in genes
        ]

    def breakdown(self, spec, seq_len):
        # one segment with an empty memory: the keys are the segment's own tokens
        embedding, embed_flops = adaptive_side(spec, seq_len, adaptive_head=True)
        return totals(
            stack(self.blocks(spec), seq_len, klen=seq_len), embedding=embedding, embed_head_flops=embed_flops
        )

    def retarget(self, spec, vocab_size, max_seq_len):
        return spec.with_(vocab_size=vocab_size, max_seq_len=max_seq_len, cutoffs=trim_cutoffs(spec, vocab_size))


BACKBONES.add("transformer_xl", TransformerXL())
