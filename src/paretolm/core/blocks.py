"""The block descriptor: what one layer of a spec holds, in the terms every stage reads.

A backbone describes a spec as a list of ``Block``s (``Backbone.blocks``). A block has an optional
attention (query heads, key/value heads, head width, how positions enter), an optional
feed-forward part (inner width, plain or gated, activation), its norms, and ``times``: how often
its weights are applied (MeRino's shared layers). Its weight matrices follow from that
(``Block.matrices``), so the exact counts, the entropy proxy, the latency-predictor features, the
data proxies, the models and the supernet all read one description. Conventions and the FLOP
formulas: docs/counting.md.
"""

from __future__ import annotations

from dataclasses import dataclass

POSITIONS = ("absolute", "relative", "rotary")
ACTIVATIONS = ("gelu_tanh", "gelu", "relu", "silu")
NORMS = ("layernorm", "rmsnorm")


@dataclass(frozen=True)
class Attention:
    """Multi-head self-attention. ``n_kv_head`` below ``n_head`` is grouped-query attention (each
    key/value head serves ``n_head / n_kv_head`` query heads; 1 is multi-query). ``positions``:
    ``absolute`` (learned embeddings added before the stack), ``relative`` (Transformer-XL's
    relative projection ``r`` and biases), ``rotary`` (RoPE on queries and keys, base
    ``rope_theta``)."""

    n_head: int
    head_dim: int
    n_kv_head: int = 0  # 0: as many as n_head
    positions: str = "absolute"
    bias: bool = True
    causal: bool = True
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        if self.n_kv_head == 0:
            object.__setattr__(self, "n_kv_head", self.n_head)
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_kv_head: {self.n_kv_head} key/value heads do not divide n_head={self.n_head}")
        if self.positions not in POSITIONS:
            raise ValueError(f"positions: {self.positions!r} is not one of {', '.join(POSITIONS)}")

    @property
    def width(self) -> int:
        """Width of the queries (and of the attention's output before its projection)."""
        return self.n_head * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.n_kv_head * self.head_dim


@dataclass(frozen=True)
class FeedForward:
    """Position-wise feed-forward: ``down(act(up(x)))``, or ``down(act(gate(x)) * up(x))`` when
    ``gated`` (SwiGLU with ``silu``)."""

    d_inner: int
    activation: str = "gelu_tanh"
    gated: bool = False
    bias: bool = True

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation: {self.activation!r} is not one of {', '.join(ACTIVATIONS)}")


@dataclass(frozen=True)
class Matrix:
    """One weight matrix of a block: the linear map ``d_in -> d_out`` called ``name`` (``q``,
    ``k``, ``v``, ``o``, ``r``; ``up``, ``gate``, ``down``) of its attention or feed-forward part."""

    name: str
    part: str  # "attn" or "ffn"
    d_in: int
    d_out: int
    bias: bool

    @property
    def params(self) -> int:
        return self.d_in * self.d_out + (self.d_out if self.bias else 0)


@dataclass(frozen=True)
class Block:
    """One layer (or PAR sub-layer) of a spec: ``d_model`` is the residual stream's width."""

    d_model: int
    attention: Attention | None = None
    ffn: FeedForward | None = None
    norm: str = "layernorm"
    pre_norm: bool = True
    times: int = 1

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"norm: {self.norm!r} is not one of {', '.join(NORMS)}")
        if self.attention is None and self.ffn is None:
            raise ValueError("block: needs an attention or a feed-forward part")

    def matrices(self) -> tuple[Matrix, ...]:
        """Every weight matrix, attention first (q, k, v, o, then r for relative positions), then
        the feed-forward (up, gate when gated, down)."""
        out: list[Matrix] = []
        d, a, f = self.d_model, self.attention, self.ffn
        if a is not None:
            out += [
                Matrix("q", "attn", d, a.width, a.bias),
                Matrix("k", "attn", d, a.kv_width, a.bias),
                Matrix("v", "attn", d, a.kv_width, a.bias),
                Matrix("o", "attn", a.width, d, a.bias),
            ]
            if a.positions == "relative":
                out.append(Matrix("r", "attn", d, a.width, False))
        if f is not None:
            out.append(Matrix("up", "ffn", d, f.d_inner, f.bias))
            if f.gated:
                out.append(Matrix("gate", "ffn", d, f.d_inner, f.bias))
            out.append(Matrix("down", "ffn", f.d_inner, d, f.bias))
        return tuple(out)

    @property
    def n_norms(self) -> int:
        return (self.attention is not None) + (self.ffn is not None)

    def norm_params(self) -> int:
        per = 2 * self.d_model if self.norm == "layernorm" else self.d_model
        return self.n_norms * per

    def params(self, part: str | None = None) -> int:
        """Parameters of one copy of the block's weights (``part``: "attn", "ffn" or all, norms
        included only then); relative attention adds its two ``(n_head, head_dim)`` biases."""
        total = sum(m.params for m in self.matrices() if part is None or m.part == part)
        if self.attention is not None and self.attention.positions == "relative" and part in (None, "attn"):
            total += 2 * self.attention.width
        return total + (self.norm_params() if part is None else 0)

    def flops(self, seq_len: int, klen: int | None = None) -> int:
        """Forward FLOPs of one application over ``seq_len`` tokens attending to ``klen`` keys
        (default ``seq_len``), as ``FlopCounterMode`` counts them: every projection, the score and
        mixing products over the full ``seq_len x klen`` matrix, and for relative positions the
        ``r`` projection of ``klen`` positions and its score product. Norms and activations are
        element-wise and not counted."""
        t, k = seq_len, seq_len if klen is None else klen
        total = 0
        for m in self.matrices():
            rows = k if m.name == "r" else t
            total += 2 * rows * m.d_in * m.d_out
        if self.attention is not None:
            total += 4 * t * k * self.attention.width
            if self.attention.positions == "relative":
                total += 2 * t * k * self.attention.width
        return total


def depth(blocks: list[Block] | tuple[Block, ...]) -> float:
    """MeRino's depth ``L``: a block with attention and feed-forward counts 1, one with either
    1/2 (a PAR sub-layer), each application counted."""
    return sum(b.times * ((b.attention is not None) + (b.ffn is not None)) for b in blocks) / 2.0


__all__ = ["ACTIVATIONS", "NORMS", "POSITIONS", "Attention", "Block", "FeedForward", "Matrix", "depth"]
