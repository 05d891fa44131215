"""Llama-family decoder backbone (Llama 3.2, SmolLM, Qwen2, MobileLLM): RMSNorm, SwiGLU
feed-forwards, rotary positions, grouped-query attention, no biases, an optionally tied head.

Genes: ``n_layer``, ``d_model``, per-layer ``n_head``, ``n_kv_head`` (default ``n_head``; divides
it: grouped-query attention, 1 is multi-query) and ``d_inner`` (SwiGLU's hidden width), and one
``head_dim`` for every layer (default ``d_model // max(n_head)``, so no layer's queries are wider
than the model; llama.cpp and Hugging Face both take one head width), ``rope_theta`` (default
10000; Llama 3 uses 500000). Heterogeneous per-layer sizes as in LTS's spaces; a homogeneous spec
exports to a stock ``LlamaForCausalLM``. The head is tied to the embedding with the common
``tie_weights`` (MobileLLM ties it below 1 B parameters).
"""

from __future__ import annotations

from paretolm.core.backbones import BACKBONES, Backbone
from paretolm.core.blocks import Attention, Block, FeedForward
from paretolm.core.counting import stack, totals
from paretolm.core.genes import finite_positive, per_layer, positive

NORM_EPS = 1e-5  # RMSNorm's epsilon (Llama 3.2, SmolLM), written into exported configs


class Llama(Backbone):
    name = "llama"
    genes = ("n_layer", "d_model", "n_head", "n_kv_head", "d_inner", "head_dim", "rope_theta")
    model = "paretolm.models.llama:LlamaLM"

    example = {
        "backbone": "llama",
        "n_layer": 2,
        "d_model": 32,
        "n_head": [4, 2],
        "n_kv_head": [2, 1],
        "d_inner": [48, 64],
        "head_dim": 8,
        "vocab_size": 300,
        "max_seq_len": 64,
    }

    def normalise(self, genes, common):
        n = positive(genes, "n_layer", self.name)
        out = {"n_layer": n, "d_model": positive(genes, "d_model", self.name)}
        out["n_head"] = per_layer(genes.get("n_head"), n, "n_head")
        kv = genes.get("n_kv_head")
        out["n_kv_head"] = out["n_head"] if kv is None else per_layer(kv, n, "n_kv_head")
        for i, (h, g) in enumerate(zip(out["n_head"], out["n_kv_head"], strict=True)):
            if h % g:
                raise ValueError(f"n_kv_head[{i}]: {g} key/value heads do not divide n_head[{i}]={h}")
        out["d_inner"] = per_layer(genes.get("d_inner"), n, "d_inner")
        if genes.get("head_dim") is None:
            widest = max(out["n_head"])
            if out["d_model"] % widest:
                raise ValueError(f"head_dim: not given, and n_head={widest} does not divide d_model={out['d_model']}")
            out["head_dim"] = out["d_model"] // widest
        else:
            out["head_dim"] = positive(genes, "head_dim", self.name)
        if out["head_dim"] % 2:
            raise ValueError(f"head_dim: rotary positions rotate pairs of features; {out['head_dim']} is odd")
        theta = 10000.0 if genes.get("rope_theta") is None else genes["rope_theta"]
        out["rope_theta"] = finite_positive(theta, "rope_theta")
        return out

    def blocks(self, spec):
        return [
            Block(
                spec.d_model,
                Attention(h, spec.head_dim, g, positions="rotary", bias=False, rope_theta=spec.rope_theta),
                FeedForward(f, "silu", gated=True, bias=False),
                norm="rmsnorm",
            )
            for h, g, f in zip(spec.n_head, spec.n_kv_head, spec.d_inner, strict=True)
        ]

    def breakdown(self, spec, seq_len):
        d, v = spec.d_model, spec.vocab_size
        return totals(
            stack(self.blocks(spec), seq_len),
            decoder_extra=d,  # the final RMSNorm
            embedding=v * d + (0 if spec.tie_weights else v * d),
            embed_head_flops=2 * seq_len * d * v,
        )

    def homogeneous(self, spec) -> bool:
        """Every layer alike: what a stock ``LlamaForCausalLM`` can hold."""
        return len({*zip(spec.n_head, spec.n_kv_head, spec.d_inner, strict=True)}) == 1


BACKBONES.add("llama", Llama())
