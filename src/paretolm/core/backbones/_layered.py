"""Gene validation shared by the layer-stacked backbones (gpt2, opt, transformer_xl, bert)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paretolm.core.backbones import integer, per_layer, positive

# LTS's adaptive embedding / softmax cutoffs (those below vocab_size are kept).
LTS_CUTOFFS = (19997, 39997, 199997)


def stacked(genes: dict[str, Any], backbone: str, per_layer_genes: bool = True) -> dict[str, Any]:
    """``n_layer``, ``d_model`` and ``n_head``/``d_inner`` (per layer, or one value for all);
    every head count must divide ``d_model``."""
    out = {"n_layer": positive(genes, "n_layer", backbone), "d_model": positive(genes, "d_model", backbone)}
    for name in ("n_head", "d_inner"):
        if per_layer_genes:
            out[name] = per_layer(genes.get(name), out["n_layer"], name)
        else:
            out[name] = positive(genes, name, backbone)
    heads = out["n_head"] if per_layer_genes else (out["n_head"],)
    for i, h in enumerate(heads):
        if out["d_model"] % h:
            where = f"n_head[{i}]" if per_layer_genes else "n_head"
            raise ValueError(f"{where}: {h} heads do not divide d_model={out['d_model']}")
    return out


def adaptive(genes: Mapping[str, Any], d_model: int, vocab_size: int) -> dict[str, Any]:
    """``div_val`` (default 1), ``d_embed`` (default d_model) and ``cutoffs`` of the adaptive
    embedding / softmax (default: LTS's cutoffs below ``vocab_size``)."""
    div_val = 1 if genes.get("div_val") is None else genes["div_val"]
    div_val = positive({"div_val": div_val}, "div_val", "")
    d_embed = d_model if genes.get("d_embed") is None else genes["d_embed"]
    d_embed = positive({"d_embed": d_embed}, "d_embed", "")
    cutoffs = genes.get("cutoffs")
    if cutoffs is None:
        cutoffs = tuple(c for c in LTS_CUTOFFS if c < vocab_size)
    if not isinstance(cutoffs, (list, tuple)):
        raise ValueError(f"cutoffs: expected a list of integers, got {cutoffs!r}")
    cutoffs = tuple(cutoffs)
    for i, c in enumerate(cutoffs):
        if not isinstance(c, int) or isinstance(c, bool) or not 0 < c < vocab_size:
            raise ValueError(f"cutoffs[{i}]: {c!r} must be an integer in (0, vocab_size={vocab_size})")
        if i and c <= cutoffs[i - 1]:
            raise ValueError(f"cutoffs[{i}]: cutoffs must increase, got {list(cutoffs)}")
    if div_val > 1:
        for i in range(len(cutoffs) + 1):
            if d_embed // div_val**i < 1:
                raise ValueError(f"div_val: d_embed={d_embed} // div_val**{i} leaves cluster {i} with no width")
    return {"div_val": div_val, "d_embed": d_embed, "cutoffs": cutoffs}


def trim_cutoffs(spec: Any, vocab_size: int) -> tuple[int, ...]:
    """The spec's adaptive cutoffs that still fit a vocabulary of ``vocab_size``."""
    return tuple(c for c in spec.cutoffs if c < vocab_size)


__all__ = ["LTS_CUTOFFS", "adaptive", "integer", "stacked", "trim_cutoffs"]
