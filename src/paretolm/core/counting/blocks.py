"""Exact parameter and FLOP counts for the ``merino``, ``par`` and ``bert`` backbones.

Plain integer arithmetic on the spec (no torch), mirroring ``models.merino``, ``models.par`` and
``models.bert`` module by module. FLOPs are forward FLOPs at batch 1, two per multiply-add, for
every matrix product the model runs: projections, attention scores and mixing (full ``T x T``, as
``torch.utils.flop_counter`` counts them, causal or not), FFNs and the LM head; LayerNorms,
softmax, GELU and additions are not counted.

What is "decoder" (LTS's non-embedding count) and what is embedding-side:

* ``merino``: decoder = the shared layers (counted once per block, however deep), the
  inter-block width projections and the final LayerNorm; embedding = token and positional
  embeddings, the output projection back to ``E_1`` (tied head) or the untied head. A block of
  depth ``L`` costs ``L`` times its layer's FLOPs but its parameters only once.
* ``par``: decoder = the ``s`` and ``f`` sub-layers (``i`` has none) and the final LayerNorm.
* ``bert``: decoder = the encoder layers; embedding = token, position and token-type
  embeddings, the embedding LayerNorm and the MLM head (dense, LayerNorm, decoder bias, and the
  decoder weight when untied).

As in ``counting.lts``, the final LayerNorm of the decoder stack counts as decoder.
"""

from __future__ import annotations

from paretolm.core.arch import ArchSpec
from paretolm.core.backbones import Counts

TYPE_VOCAB_SIZE = 2  # models.bert.TYPE_VOCAB_SIZE


def _attention_params(d: int, inner: int) -> int:
    # fused QKV (weight + bias) and output projection (weight + bias)
    return 4 * d * inner + 3 * inner + d


def _ffn_params(d: int, d_inner: int) -> int:
    return 2 * d * d_inner + d_inner + d


def _attention_flops(d: int, inner: int, t: int) -> int:
    # QKV and output projections, then scores (T x T x inner) and mixing (T x T x inner)
    return 8 * t * d * inner + 4 * t * t * inner


def _ffn_flops(d: int, d_inner: int, t: int) -> int:
    return 4 * t * d * d_inner


def _layer_params(d: int, d_inner: int) -> int:
    """A transformer layer with two LayerNorms, attention of inner width ``d`` and an FFN."""
    return _attention_params(d, d) + _ffn_params(d, d_inner) + 4 * d


def _layer_flops(d: int, d_inner: int, t: int) -> int:
    return _attention_flops(d, d, t) + _ffn_flops(d, d_inner, t)


def par_sublayer_flops(d_model: int, n_head: int, d_inner: int, seq_len: int) -> tuple[int, int, int]:
    """Forward FLOPs of one ``s``, ``f`` and ``i`` sub-layer (``n_head`` does not change them)."""
    return _attention_flops(d_model, d_model, seq_len), _ffn_flops(d_model, d_inner, seq_len), 0


def count_merino(spec: ArchSpec, seq_len: int) -> Counts:
    t, v = seq_len, spec.vocab_size
    blocks = spec.blocks
    e_first = blocks[0].d_model
    e_last = blocks[-1].d_model
    decoder = 2 * e_last  # final LayerNorm
    flops = 0
    prev = e_first
    for b in blocks:
        e = b.d_model
        d_inner = int(round(e * b.ffn_ratio))  # MerinoBlock.d_inner
        if e != prev:
            decoder += prev * e + e
            flops += 2 * t * prev * e
        decoder += _layer_params(e, d_inner)
        flops += b.n_layer * _layer_flops(e, d_inner, t)
        prev = e
    embedding = (v + spec.max_seq_len) * e_first
    if spec.tie_weights:
        if e_last != e_first:
            embedding += e_last * e_first
            flops += 2 * t * e_last * e_first
        flops += 2 * t * e_first * v
    else:
        embedding += e_last * v
        flops += 2 * t * e_last * v
    return Counts(decoder, embedding, decoder + embedding, flops)


def count_par(spec: ArchSpec, seq_len: int) -> Counts:
    t, d, v, di = seq_len, spec.d_model, spec.vocab_size, spec.d_inner
    n_s = spec.layers.count("s")
    n_f = spec.layers.count("f")
    decoder = n_s * (_attention_params(d, d) + 2 * d) + n_f * (_ffn_params(d, di) + 2 * d) + 2 * d
    embedding = (v + spec.max_seq_len) * d + (0 if spec.tie_weights else v * d)
    flops = n_s * _attention_flops(d, d, t) + n_f * _ffn_flops(d, di, t) + 2 * t * d * v
    return Counts(decoder, embedding, decoder + embedding, flops)


def count_bert(spec: ArchSpec, seq_len: int) -> Counts:
    t, d, v = seq_len, spec.d_model, spec.vocab_size
    decoder = spec.n_layer * _layer_params(d, spec.d_inner)
    embedding = (v + spec.max_seq_len + TYPE_VOCAB_SIZE) * d + 2 * d  # embeddings + their LayerNorm
    embedding += d * d + d + 2 * d + v  # MLM head: dense, LayerNorm, decoder bias
    if not spec.tie_weights:
        embedding += v * d
    flops = spec.n_layer * _layer_flops(d, spec.d_inner, t) + 2 * t * d * d + 2 * t * d * v
    return Counts(decoder, embedding, decoder + embedding, flops)
