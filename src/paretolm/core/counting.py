"""Exact analytic parameter and FLOP counts, from a spec alone (no model is built, no torch).

``count(spec, seq_len)`` returns ``Counts``; ``breakdown(spec, seq_len)`` the named parts behind
them. A backbone's ``breakdown`` adds its embedding side (token and position embeddings, LTS's
adaptive embedding and softmax, the LM head) to ``stack``, the parts of its decoder blocks as the
block descriptor gives them (``paretolm.core.blocks``).

``decoder_params`` is LTS's non-embedding count: every parameter inside the decoder layers, norms
included, with token embeddings, positional embeddings and the softmax / LM head excluded;
``embedding_params = total_params - decoder_params``; ``total_params`` counts tied or shared
tensors once; ``flops`` are forward FLOPs (2 per multiply-add) at batch 1, as
``torch.utils.flop_counter.FlopCounterMode`` counts matrix products. Each is checked, to the
parameter and the FLOP, against the instantiated model in the tests. Conventions: docs/counting.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from paretolm.core.blocks import Block

if TYPE_CHECKING:
    from paretolm.core.arch import ArchSpec

DEFAULT_SEQ_LEN = 192


@dataclass(frozen=True)
class Counts:
    """Exact analytic counts of one spec (see docs/counting.md)."""

    decoder_params: int
    embedding_params: int
    total_params: int
    flops: int  # forward FLOPs at batch 1 and the given sequence length (2 per multiply-add)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_breakdown(cls, parts: Mapping[str, int]) -> Counts:
        """From a named breakdown holding at least the four totals."""
        return cls(parts["decoder_params"], parts["embedding_params"], parts["total_params"], parts["flops"])


def breakdown(spec: ArchSpec, seq_len: int = DEFAULT_SEQ_LEN) -> dict[str, int]:
    """Named parts of the counts: ``*_params`` and ``*_flops`` (``sdpa_flops`` is the score and
    mixing work inside ``scaled_dot_product_attention``), and the four totals."""
    if seq_len <= 0:
        raise ValueError(f"seq_len: must be positive, got {seq_len}")
    return spec.plugin.breakdown(spec, seq_len)


def count(spec: ArchSpec, seq_len: int = DEFAULT_SEQ_LEN) -> Counts:
    return Counts.from_breakdown(breakdown(spec, seq_len))


def stack(blocks: Sequence[Block], seq_len: int, klen: int | None = None) -> dict[str, int]:
    """The parts of a stack of decoder blocks: ``attn_params`` (relative positions' biases
    included, also as ``rbias_params``), ``ffn_params``, ``norm_params``, and, each block
    counted as often as it is applied, ``linear_flops`` (every projection but the relative
    ``r``), ``sdpa_flops`` and ``relpos_flops`` (``r`` and its score product)."""
    t = seq_len
    k = t if klen is None else klen
    parts = dict.fromkeys(
        ("attn_params", "rbias_params", "ffn_params", "norm_params", "linear_flops", "sdpa_flops", "relpos_flops"), 0
    )
    for b in blocks:
        parts["attn_params"] += b.params("attn")
        parts["ffn_params"] += b.params("ffn")
        parts["norm_params"] += b.norm_params()
        for m in b.matrices():
            if m.name == "r":
                parts["relpos_flops"] += b.times * 2 * k * m.d_in * m.d_out
            else:
                parts["linear_flops"] += b.times * 2 * t * m.d_in * m.d_out
        if b.attention is not None:
            parts["sdpa_flops"] += b.times * 4 * t * k * b.attention.width
            if b.attention.positions == "relative":
                parts["rbias_params"] += 2 * b.attention.width
                parts["relpos_flops"] += b.times * 2 * t * k * b.attention.width
    return parts


def totals(
    parts: Mapping[str, int],
    *,
    decoder_extra: int = 0,
    decoder_extra_flops: int = 0,
    embedding: int = 0,
    positions: int = 0,
    embed_head_flops: int = 0,
) -> dict[str, int]:
    """``stack``'s parts with what the backbone adds outside its blocks (a final norm or width
    projections in the decoder; embeddings, positions and the head outside it) and the totals."""
    decoder = parts["attn_params"] + parts["ffn_params"] + parts["norm_params"] + decoder_extra
    flops = parts["linear_flops"] + parts["sdpa_flops"] + parts["relpos_flops"] + decoder_extra_flops + embed_head_flops
    return {
        **parts,
        "decoder_params": decoder,
        "embedding_params": embedding + positions,
        "position_params": positions,
        "total_params": decoder + embedding + positions,
        "embed_head_flops": embed_head_flops,
        "flops": flops,
    }


# -- LTS's adaptive embedding and softmax (models.adaptive) -------------------------------------
def clusters(vocab: int, cutoffs: Sequence[int]) -> list[int]:
    """Cluster sizes for cutoffs (ends: cutoffs then vocab)."""
    sizes, prev = [], 0
    for c in (*cutoffs, vocab):
        sizes.append(c - prev)
        prev = c
    return sizes


def adaptive_side(spec: Any, seq_len: int, adaptive_head: bool) -> tuple[int, int]:
    """(parameters, FLOPs) of token embedding + LM head, as ``models.adaptive`` builds them
    (``div_val``, ``d_embed`` and ``cutoffs`` default to a plain embedding of width ``d_model``)."""
    v, d = spec.vocab_size, spec.d_model
    div_val = spec.get("div_val") or 1
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
    sizes = clusters(v, cutoffs)
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


__all__ = ["DEFAULT_SEQ_LEN", "Counts", "adaptive_side", "breakdown", "clusters", "count", "stack", "totals"]
