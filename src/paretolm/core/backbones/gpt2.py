"""GPT-2 backbone (LTS's heterogeneous space): pre-LN layers with per-layer heads and FFN widths,
learned positions, GELU, and LTS's adaptive embedding / softmax when ``div_val > 1``.

Genes: ``n_layer``, ``d_model``, per-layer ``n_head`` and ``d_inner``, ``div_val`` (default 1),
``d_embed`` (default ``d_model``), ``cutoffs`` (default LTS's, below ``vocab_size``).
"""

from __future__ import annotations

from typing import Any

from paretolm.core.backbones import BACKBONES, Backbone, Counts, Layer
from paretolm.core.backbones._layered import adaptive, stacked, trim_cutoffs


class GPT2(Backbone):
    name = "gpt2"
    genes = ("n_layer", "d_model", "n_head", "d_inner", "div_val", "d_embed", "cutoffs")

    example = {"backbone": "gpt2", "n_layer": 2, "d_model": 32, "n_head": [2, 4], "d_inner": [48, 64],
               "div_val": 2, "vocab_size": 300, "cutoffs": [100, 200], "max_seq_len": 64}

    def normalise(self, genes, common):
        out = stacked(genes, self.name)
        out.update(adaptive(genes, out["d_model"], common["vocab_size"]))
        return out

    def layers(self, spec):
        d = spec.d_model
        return [Layer(d, h, f, d) for h, f in zip(spec.n_head, spec.d_inner, strict=True)]

    def build(self, spec, dropout=0.0, attn_dropout=0.0):
        from paretolm.models.gpt2 import GPT2LM

        return GPT2LM(spec, dropout=dropout, attn_dropout=attn_dropout)

    def count(self, spec, seq_len):
        from paretolm.core.counting.lts import gpt2_breakdown

        return Counts.from_breakdown(gpt2_breakdown(spec, seq_len))

    def retarget(self, spec: Any, vocab_size: int, max_seq_len: int) -> Any:
        return spec.with_(vocab_size=vocab_size, max_seq_len=max_seq_len, cutoffs=trim_cutoffs(spec, vocab_size))


BACKBONES.add('gpt2', GPT2())
