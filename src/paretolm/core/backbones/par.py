"""PAR Transformer backbone: a string of sub-layers, each self-attention (``s``), feed-forward
(``f``) or identity (``i``), written in PAR notation (``"(sfff)x6 (f)x8"``) and stored expanded.

Genes: ``layers``, ``d_model``, ``n_head``, ``d_inner``. The search genome has one ``layers[i]``
entry per sub-layer (``per: sublayer``, with ``fixed.n_sublayer``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from paretolm.core.backbones import BACKBONES, Backbone
from paretolm.core.blocks import Attention, Block, FeedForward
from paretolm.core.counting import stack, totals
from paretolm.core.genes import positive

SUBLAYERS = "sfi"
MAX_SUBLAYERS = 4096  # longer strings are refused before they are expanded in memory
_PAR_GROUP = re.compile(r"\(([sfi]+)\)\s*(?:x\s*(\d+))?|([sfi]+)")


def expand_par(text: str) -> str:
    """Expand PAR notation (``"(sfff)x6 (f)x8"``, ``"sfsf"``) to a plain string of s/f/i."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"layers: expected a non-empty PAR string, got {text!r}")
    out, pos, src, length = [], 0, text.strip(), 0
    while pos < len(src):
        if src[pos].isspace():
            pos += 1
            continue
        m = _PAR_GROUP.match(src, pos)
        if not m:
            raise ValueError(
                f"layers: cannot parse PAR string {text!r} at position {pos} ({src[pos : pos + 8]!r}); "
                "use s (self-attention), f (feed-forward), i (identity), groups like (sf)x4"
            )
        if m.group(1):
            times = int(m.group(2) or 1)
            if times <= 0:
                raise ValueError(f"layers: repeat count must be positive in {text!r}")
            piece_len = len(m.group(1)) * times
        else:
            piece_len = len(m.group(3))
        length += piece_len
        if length > MAX_SUBLAYERS:
            raise ValueError(f"layers: {text!r} expands to more than {MAX_SUBLAYERS} sub-layers")
        out.append(m.group(1) * times if m.group(1) else m.group(3))
        pos = m.end()
    return "".join(out)


def compress_par(layers: str) -> str:
    """Run-length PAR notation of an expanded string, for display: ``"sfffsfff"`` -> ``"(sfff)x2"``."""
    best = layers
    for period in range(1, len(layers) // 2 + 1):
        unit = layers[:period]
        reps = 1
        while layers[reps * period : (reps + 1) * period] == unit:
            reps += 1
        if reps > 1:
            rest = layers[reps * period :]
            cand = f"({unit})x{reps}" + (" " + compress_par(rest) if rest else "")
            if len(cand) < len(best):
                best = cand
    return best


class SublayerCodec:
    """Genome of a PAR space: one ``layers[i]`` entry (s, f or i) per sub-layer position."""

    per = "sublayer"
    fixed_keys = ("n_sublayer",)

    def positions(self, space: Any) -> int:
        return int(space.fixed["n_sublayer"])

    def check(self, space: Any) -> None:
        for name, gene in space.genes.items():
            if gene.per == "sublayer" and "n_sublayer" not in space.fixed:
                raise ValueError(f"genes.{name}: per-sublayer gene needs fixed.n_sublayer")

    def decode(self, space: Any, genome: Mapping[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        values["layers"] = "".join(str(genome[f"layers[{i}]"]) for i in range(self.positions(space)))
        return values

    def encode_position(self, spec: Any, gene: Any, i: int) -> Any:
        return spec.layers[i]

    def repair(self, space: Any, genome: dict[str, Any], rng: Any) -> dict[str, Any]:
        return genome

    def violation(self, space: Any, spec: Any) -> str | None:
        return None


class Par(Backbone):
    name = "par"
    genes = ("layers", "d_model", "n_head", "d_inner")
    model = "paretolm.models.par:ParLM"
    codec = SublayerCodec()

    example = {
        "backbone": "par",
        "layers": "sfsfi",
        "d_model": 32,
        "n_head": 4,
        "d_inner": 48,
        "vocab_size": 300,
        "max_seq_len": 64,
    }

    def normalise(self, genes, common):
        if genes.get("layers") is None:
            raise ValueError("layers: PAR backbone needs a layers string such as '(sfff)x6 (f)x8'")
        out = {"layers": expand_par(genes["layers"])}
        for name in ("d_model", "n_head", "d_inner"):
            out[name] = positive(genes, name, self.name)
        if out["d_model"] % out["n_head"]:
            raise ValueError(f"n_head: {out['n_head']} heads do not divide d_model={out['d_model']}")
        return out

    def blocks(self, spec):
        attention, ffn = self.sublayer_blocks(spec.d_model, spec.n_head, spec.d_inner)
        return [attention if c == "s" else ffn for c in spec.layers if c != "i"]

    @staticmethod
    def sublayer_blocks(d_model: int, n_head: int, d_inner: int) -> tuple[Block, Block]:
        """The blocks of an ``s`` and an ``f`` sub-layer (PAR builds on Transformer-XL, whose
        feed-forward uses ReLU)."""
        return (
            Block(d_model, attention=Attention(n_head, d_model // n_head)),
            Block(d_model, ffn=FeedForward(d_inner, "relu")),
        )

    def breakdown(self, spec, seq_len):
        d, v = spec.d_model, spec.vocab_size
        return totals(
            stack(self.blocks(spec), seq_len),
            decoder_extra=2 * d,  # the final LayerNorm
            embedding=v * d + (0 if spec.tie_weights else v * d),
            positions=spec.max_seq_len * d,
            embed_head_flops=2 * seq_len * d * v,
        )

    @staticmethod
    def sublayer_flops(d_model: int, n_head: int, d_inner: int, seq_len: int) -> tuple[int, int, int]:
        """Forward FLOPs of one ``s``, ``f`` and ``i`` sub-layer (``n_head`` does not change them)."""
        attention, ffn = Par.sublayer_blocks(d_model, n_head, d_inner)
        return attention.flops(seq_len), ffn.flops(seq_len), 0


BACKBONES.add("par", Par())
