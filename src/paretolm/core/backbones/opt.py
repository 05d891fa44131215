"""OPT backbone: GPT-2's pre-LN stack with ReLU feed-forward layers and a plain tied embedding.

Genes: ``n_layer``, ``d_model``, per-layer ``n_head`` and ``d_inner`` (no adaptive embedding).
Blocks and counts are GPT-2's.
"""

from __future__ import annotations

from paretolm.core.backbones import BACKBONES, Backbone
from paretolm.core.backbones.gpt2 import GPT2
from paretolm.core.genes import stacked


class OPT(GPT2):
    name = "opt"
    genes = ("n_layer", "d_model", "n_head", "d_inner")
    model = "paretolm.models.gpt2:OPTLM"
    activation = "relu"
    example = {
        "backbone": "opt",
        "n_layer": 2,
        "d_model": 32,
        "n_head": [2, 4],
        "d_inner": [48, 64],
        "vocab_size": 300,
        "max_seq_len": 64,
    }

    def normalise(self, genes, common):
        return stacked(genes, self.name)

    retarget = Backbone.retarget  # no adaptive cutoffs to trim


BACKBONES.add("opt", OPT())
