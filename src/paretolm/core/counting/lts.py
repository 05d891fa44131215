"""Exact parameter and FLOP counts for the LTS backbones (``gpt2``, ``opt``, ``transformer_xl``).

Plain integer arithmetic on the spec (no torch on this path): about a few microseconds a spec.
The conventions, and how they relate to LTS's own ``params_summary.yaml``, are in
``docs/counting.md``; in short:

* ``decoder_params``: everything in the decoder layers, LayerNorms included; for ``gpt2``/``opt``
  also the final LayerNorm, for ``transformer_xl`` also each layer's ``r_w_bias``/``r_r_bias``
  (exactly LTS's ``nonembedding``).
* ``embedding_params = total_params - decoder_params``: token embedding (with its projections),
  learned positions, and whatever of the LM head / adaptive softmax is not tied to the embedding
  (biases, cluster parameters, untied weights).
* ``total_params``: unique parameters, tied tensors counted once, = ``sum(p.numel() for p in
  model.parameters())``.
* ``flops``: forward FLOPs (2 per multiply-add) of one sequence of ``seq_len`` tokens at batch 1,
  as ``torch.utils.flop_counter.FlopCounterMode`` counts matrix products: every linear layer and
  projection, the attention score and mixing products over the full ``seq_len x klen`` matrix
  (the causal mask saves no counted FLOP), Transformer-XL's positional products, and the whole LM
  head / adaptive softmax. Element-wise work (LayerNorm, softmax, activations, bias adds) and
  embedding lookups are not counted. Transformer-XL counts one segment with an empty memory
  (``klen == seq_len``): ``model(input_ids)`` without ``mems``.
"""

from __future__ import annotations

from typing import Any

from paretolm.core.arch import ArchSpec


def _clusters(vocab: int, cutoffs: tuple[int, ...]) -> list[int]:
    """Cluster sizes for cutoffs (ends: cutoffs then vocab)."""
    sizes, prev = [], 0
    for c in (*cutoffs, vocab):
        sizes.append(c - prev)
        prev = c
    return sizes


def _adaptive_side(spec: ArchSpec, seq_len: int, adaptive_head: bool) -> tuple[int, int]:
    """(parameters, FLOPs) of token embedding + LM head, as ``models.adaptive`` builds them."""
    v, d = spec.vocab_size, spec.d_model
    div_val = spec.get("div_val") or 1  # opt has no adaptive genes
    de = spec.get("d_embed") or d
    cutoffs = spec.get("cutoffs") or ()
    tied = spec.tie_weights
    t = seq_len
    if div_val == 1:
        table = v * de
        proj = d * de if de != d else 0
        emb_p = table + proj
        emb_f = 2 * t * de * d if proj else 0
        head_f = (2 * t * d * de if proj else 0) + 2 * t * de * v
        head_p = 0 if tied else table + proj
        if adaptive_head:
            n_cl = len(cutoffs)
            head_p += v + (n_cl * (de + 1) if n_cl else 0)
            head_f += 2 * t * de * n_cl
        return emb_p + head_p, emb_f + head_f
    sizes = _clusters(v, cutoffs)
    emb_p = emb_f = head_f = 0
    for i, n in enumerate(sizes):
        w = de // div_val**i
        emb_p += n * w + d * w
        emb_f += 2 * t * w * d
        head_f += 2 * t * d * w + 2 * t * w * n
    n_cl = len(sizes) - 1
    head_p = v + (n_cl * (de + 1) if n_cl else 0) + (0 if tied else emb_p)
    head_f += 2 * t * de * n_cl
    return emb_p + head_p, emb_f + head_f


def gpt2_breakdown(spec: ArchSpec, seq_len: int) -> dict[str, int]:
    """Parameter and FLOP parts of a ``gpt2`` / ``opt`` spec (see module docstring)."""
    d, t = spec.d_model, seq_len
    attn_p = ffn_p = 0
    attn_f = ffn_f = 0
    for f in spec.d_inner:
        attn_p += 4 * d * d + 4 * d
        ffn_p += 2 * d * f + f + d
        ffn_f += 4 * t * d * f
    n = spec.n_layer
    attn_f = n * 8 * t * d * d
    sdpa_f = n * 4 * t * t * d
    ln_p = n * 4 * d + 2 * d
    emb_p, emb_f = _adaptive_side(spec, seq_len, adaptive_head=(spec.get("div_val") or 1) > 1)
    pos_p = spec.max_seq_len * d
    decoder = attn_p + ffn_p + ln_p
    return {
        "attn_params": attn_p, "ffn_params": ffn_p, "layernorm_params": ln_p, "decoder_params": decoder,
        "embedding_params": emb_p + pos_p, "position_params": pos_p, "total_params": decoder + emb_p + pos_p,
        "linear_flops": attn_f + ffn_f, "sdpa_flops": sdpa_f, "relpos_flops": 0, "embed_head_flops": emb_f,
        "flops": attn_f + ffn_f + sdpa_f + emb_f,
    }


def transformer_xl_breakdown(spec: ArchSpec, seq_len: int) -> dict[str, int]:
    """Parameter and FLOP parts of a ``transformer_xl`` spec (empty memory, ``klen == seq_len``)."""
    d, t = spec.d_model, seq_len
    klen = t
    attn_p = ffn_p = rbias_p = 0
    lin_f = sdpa_f = rel_f = 0
    for h, dh, f in zip(spec.n_head, spec.d_head, spec.d_inner, strict=True):
        hd = h * dh
        attn_p += 5 * d * hd  # qkv (3), r_net, o_net; no biases
        rbias_p += 2 * hd
        ffn_p += 2 * d * f + f + d
        lin_f += 2 * t * d * 3 * hd + 2 * t * hd * d + 4 * t * d * f
        rel_f += 2 * klen * d * hd + 2 * t * klen * hd  # r_net on klen positions, then (q + r_r_bias) r^T
        sdpa_f += 4 * t * klen * hd
    ln_p = spec.n_layer * 4 * d
    emb_p, emb_f = _adaptive_side(spec, seq_len, adaptive_head=True)
    decoder = attn_p + rbias_p + ffn_p + ln_p
    return {
        "attn_params": attn_p + rbias_p, "ffn_params": ffn_p, "layernorm_params": ln_p,
        "rbias_params": rbias_p,
        "decoder_params": decoder, "embedding_params": emb_p, "position_params": 0,
        "total_params": decoder + emb_p,
        "linear_flops": lin_f, "sdpa_flops": sdpa_f, "relpos_flops": rel_f, "embed_head_flops": emb_f,
        "flops": lin_f + sdpa_f + rel_f + emb_f,
    }


def breakdown(spec: ArchSpec, seq_len: int) -> dict[str, int]:
    """Named parts of the counts (``*_params``, ``*_flops``; ``sdpa_flops`` is the attention score
    and mixing work inside ``scaled_dot_product_attention``)."""
    if spec.backbone in ("gpt2", "opt"):
        return gpt2_breakdown(spec, seq_len)
    if spec.backbone == "transformer_xl":
        return transformer_xl_breakdown(spec, seq_len)
    raise ValueError(f"backbone: {spec.backbone!r} is not an LTS backbone (gpt2, opt, transformer_xl)")


def measured_flops(model: Any, input_ids: Any, count_sdpa: bool = True) -> int:
    """Forward FLOPs of ``model(input_ids)`` by ``torch.utils.flop_counter.FlopCounterMode``.

    On CUDA, FlopCounterMode counts ``scaled_dot_product_attention`` (its flash / efficient
    kernels); on CPU torch dispatches to ``_scaled_dot_product_flash_attention_for_cpu``, which it
    leaves out. ``count_sdpa=True`` adds that kernel with torch's own SDPA formula, so the CPU
    count equals the CUDA one; ``False`` shows what the stock counter reports on CPU.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    mapping = {}
    if count_sdpa:
        def cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
            return sdpa_flop_count(query_shape, key_shape, value_shape)  # FlopCounterMode passes shapes

        mapping[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu] = cpu_sdpa
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(input_ids)
    return int(counter.get_total_flops())
