"""MeRino backbone: blocks of layers that share one set of weights, widths non-decreasing, with a
projection where the width changes.

Genes: ``blocks`` (each ``d_model``, ``ffn_ratio``, ``n_layer``) and ``d_head`` (default 64). The
search genome has one ``d_model``/``ffn_ratio``/``n_layer`` entry per block (``per: block``, with
``fixed.n_block``); sampled widths are sorted so they never decrease.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paretolm.core.backbones import BACKBONES, Backbone
from paretolm.core.blocks import Attention, Block, FeedForward
from paretolm.core.counting import stack, totals
from paretolm.core.genes import LIMITS, bounded, finite_positive, integer, positive

BLOCK_KEYS = ("d_model", "ffn_ratio", "n_layer")


@dataclass(frozen=True)
class MerinoBlock:
    """One MeRino block: ``n_layer`` layers of width ``d_model`` sharing one set of weights."""

    d_model: int
    ffn_ratio: float
    n_layer: int

    @property
    def d_inner(self) -> int:
        return int(round(self.d_model * self.ffn_ratio))

    def to_dict(self) -> dict[str, Any]:
        return {"d_model": self.d_model, "ffn_ratio": self.ffn_ratio, "n_layer": self.n_layer}


def _block(i: int, b: Any) -> MerinoBlock:
    if isinstance(b, MerinoBlock):
        b = b.to_dict()
    if not isinstance(b, Mapping):
        raise ValueError(f"blocks[{i}]: expected a mapping, got {b!r}")
    unknown = set(b) - set(BLOCK_KEYS)
    if unknown:
        raise ValueError(f"blocks[{i}]: unknown keys {sorted(unknown)}")
    for key in BLOCK_KEYS:
        if key not in b:
            raise ValueError(f"blocks[{i}].{key}: missing")
    ratio = b["ffn_ratio"]
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        raise ValueError(f"blocks[{i}].ffn_ratio: expected a number, got {ratio!r}")
    block = MerinoBlock(
        integer(b["d_model"], f"blocks[{i}].d_model"), float(ratio), integer(b["n_layer"], f"blocks[{i}].n_layer")
    )
    for name in ("d_model", "n_layer"):
        if getattr(block, name) <= 0:
            raise ValueError(f"blocks[{i}].{name}: must be positive, got {getattr(block, name)}")
        bounded(getattr(block, name), f"blocks[{i}].{name}")
    try:
        finite_positive(block.ffn_ratio, "ffn_ratio")
        ok = block.d_inner >= 1
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"blocks[{i}].ffn_ratio: must be finite and give an FFN width >= 1, got {block.ffn_ratio}")
    return block


class BlockCodec:
    """Genome of a block-wise space: ``d_model[i]``, ``ffn_ratio[i]``, ``n_layer[i]`` per block
    (``per: block`` genes, ``fixed.n_block`` blocks); widths are sorted when decoded."""

    per = "block"
    genome_genes = BLOCK_KEYS  # the genome draws blocks gene by gene
    fixed_keys = ("n_block",)

    def positions(self, space: Any) -> int:
        return int(space.fixed["n_block"])

    def check(self, space: Any) -> None:
        for name, gene in space.genes.items():
            if gene.per == "block" and "n_block" not in space.fixed:
                raise ValueError(f"genes.{name}: per-block gene needs fixed.n_block")

    def decode(self, space: Any, genome: Mapping[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        n = self.positions(space)
        widths = sorted(genome[f"d_model[{i}]"] for i in range(n))
        values["blocks"] = [
            {"d_model": w, "ffn_ratio": float(genome[f"ffn_ratio[{i}]"]), "n_layer": genome[f"n_layer[{i}]"]}
            for i, w in enumerate(widths)
        ]
        return values

    def encode_position(self, spec: Any, gene: Any, i: int) -> Any:
        blocks = spec.to_dict()["blocks"]
        return blocks[i][gene.name] if i < len(blocks) else gene.choices[0]

    def repair(self, space: Any, genome: dict[str, Any], rng: Any) -> dict[str, Any]:
        return genome

    def violation(self, space: Any, spec: Any) -> str | None:
        return None


class Merino(Backbone):
    name = "merino"
    genes = ("blocks", "d_head")
    model = "paretolm.models.merino:MerinoLM"
    codec = BlockCodec()

    example = {
        "backbone": "merino",
        "d_head": 16,
        "vocab_size": 300,
        "max_seq_len": 64,
        "blocks": [{"d_model": 32, "ffn_ratio": 1.5, "n_layer": 2}, {"d_model": 48, "ffn_ratio": 2.0, "n_layer": 1}],
    }

    def normalise(self, genes, common):
        d_head = positive({"d_head": 64 if genes.get("d_head") is None else genes["d_head"]}, "d_head", self.name)
        raw = genes.get("blocks")
        if not raw or not isinstance(raw, (list, tuple)):
            raise ValueError(f"blocks: MeRino backbone needs a list of at least one block, got {raw!r}")
        if len(raw) > LIMITS["n_block"]:
            raise ValueError(f"blocks: {len(raw)} blocks is above the limit of {LIMITS['n_block']}")
        blocks: list[MerinoBlock] = []
        for i, b in enumerate(raw):
            block = _block(i, b)
            if block.d_model % d_head:
                raise ValueError(f"blocks[{i}].d_model: {block.d_model} is not a multiple of d_head={d_head}")
            if blocks and block.d_model < blocks[-1].d_model:
                raise ValueError(
                    f"blocks[{i}].d_model: widths must not decrease ({blocks[-1].d_model} then {block.d_model})"
                )
            blocks.append(block)
        return {"blocks": tuple(blocks), "d_head": d_head}

    def blocks(self, spec):
        return [
            Block(b.d_model, Attention(b.d_model // spec.d_head, spec.d_head), FeedForward(b.d_inner), times=b.n_layer)
            for b in spec.blocks
        ]

    def breakdown(self, spec, seq_len):
        """Decoder: the shared layers (once per block), the width projections between blocks and
        the final LayerNorm; embedding side: token and position embeddings, and the projection
        back to the embedding width (tied head) or the untied head."""
        t, v, blocks = seq_len, spec.vocab_size, spec.blocks
        e_first, e_last = blocks[0].d_model, blocks[-1].d_model
        extra, extra_flops, prev = 2 * e_last, 0, e_first  # the final LayerNorm, then the projections
        for b in blocks:
            if b.d_model != prev:
                extra += prev * b.d_model + b.d_model
                extra_flops += 2 * t * prev * b.d_model
            prev = b.d_model
        if spec.tie_weights:
            head = e_last * e_first if e_last != e_first else 0
            head_flops = 2 * t * e_last * e_first * (e_last != e_first) + 2 * t * e_first * v
        else:
            head, head_flops = e_last * v, 2 * t * e_last * v
        return totals(
            stack(self.blocks(spec), t),
            decoder_extra=extra,
            decoder_extra_flops=extra_flops,
            embedding=v * e_first + head,
            positions=spec.max_seq_len * e_first,
            embed_head_flops=head_flops,
        )


BACKBONES.add("merino", Merino())
