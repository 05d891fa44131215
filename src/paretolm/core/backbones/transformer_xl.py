"""Transformer-XL backbone (LTS's second space): relative positional attention with per-layer
``r_w_bias``/``r_r_bias``, segment memory, adaptive embedding and softmax.

Genes: as ``gpt2`` plus per-layer ``d_head`` (default ``d_model // n_head``), ``mem_len``
(default 192) and ``pre_lnorm`` (default false: post-LN).
"""

from __future__ import annotations

from typing import Any

from paretolm.core.backbones import BACKBONES, Backbone, Counts, Layer, _bounded, boolean, integer, per_layer
from paretolm.core.backbones._layered import adaptive, stacked, trim_cutoffs


class TransformerXL(Backbone):
    name = "transformer_xl"
    genes = ("n_layer", "d_model", "n_head", "d_inner", "div_val", "d_embed", "cutoffs",
             "d_head", "mem_len", "pre_lnorm")

    example = {"backbone": "transformer_xl", "n_layer": 2, "d_model": 32, "n_head": [2, 4],
               "d_inner": [48, 64], "div_val": 2, "vocab_size": 300, "cutoffs": [100, 200],
               "max_seq_len": 64, "mem_len": 16}

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
        out["mem_len"] = _bounded(integer(mem_len, "mem_len"), "mem_len")
        out["pre_lnorm"] = boolean(False if genes.get("pre_lnorm") is None else genes["pre_lnorm"], "pre_lnorm")
        return out

    def layers(self, spec):
        d = spec.d_model
        genes = zip(spec.n_head, spec.d_head, spec.d_inner, strict=True)
        return [Layer(d, h, f, h * dh, r_net=True) for h, dh, f in genes]

    def build(self, spec, dropout=0.0, attn_dropout=0.0):
        from paretolm.models.transformer_xl import TransformerXLLM

        return TransformerXLLM(spec, dropout=dropout, attn_dropout=attn_dropout)

    def count(self, spec, seq_len):
        from paretolm.core.counting.lts import transformer_xl_breakdown

        return Counts.from_breakdown(transformer_xl_breakdown(spec, seq_len))

    def retarget(self, spec: Any, vocab_size: int, max_seq_len: int) -> Any:
        return spec.with_(vocab_size=vocab_size, max_seq_len=max_seq_len, cutoffs=trim_cutoffs(spec, vocab_size))


BACKBONES.add('transformer_xl', TransformerXL())
