"""Validation of genes, shared by the backbones: every error names the gene (and layer).

Integer genes have upper bounds (``LIMITS``) far beyond any model the spaces describe, low enough
that a typo cannot allocate gigabytes before failing. ``stacked`` and ``adaptive`` validate the
genes of the layer-stacked backbones (gpt2, opt, transformer_xl, bert, llama).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

LIMITS: dict[str, int] = {
    "n_layer": 1024,
    "n_block": 256,
    "d_model": 65536,
    "d_embed": 65536,
    "d_inner": 262144,
    "n_head": 1024,
    "n_kv_head": 1024,
    "d_head": 4096,
    "head_dim": 4096,
    "div_val": 64,
    "vocab_size": 2**21,
    "max_seq_len": 2**20,
    "mem_len": 2**20,
}

# LTS's adaptive embedding / softmax cutoffs (those below vocab_size are kept).
LTS_CUTOFFS = (19997, 39997, 199997)


def bounded(value: int, name: str) -> int:
    """``value`` if it is within the limit of gene ``name`` (``blocks[0].n_layer`` and
    ``d_inner[3]`` are limited as ``n_layer`` and ``d_inner``)."""
    base = name.rsplit(".", 1)[-1].split("[", 1)[0]
    limit = LIMITS.get(base)
    if limit is not None and value > limit:
        raise ValueError(f"{name}: {value} is above the limit of {limit}")
    return value


def integer(value: Any, name: str) -> int:
    """An integer gene (a float with an integral value is accepted; booleans are not)."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    return value


def positive(genes: Mapping[str, Any], name: str, backbone: str) -> int:
    value = genes.get(name)
    if value is None:
        raise ValueError(f"{name}: missing (required by backbone {backbone!r})")
    value = integer(value, name)
    if value <= 0:
        raise ValueError(f"{name}: must be positive, got {value}")
    return bounded(value, name)


def boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    return value


def per_layer(value: Any, n_layer: int, name: str) -> tuple[int, ...]:
    """A per-layer gene: a scalar (broadcast) or a list of ``n_layer`` positive integers."""
    if value is None:
        raise ValueError(f"{name}: missing")
    if isinstance(value, (list, tuple)):
        if len(value) != n_layer:
            raise ValueError(f"{name}: has {len(value)} entries but n_layer={n_layer}")
        values = tuple(integer(v, f"{name}[{i}]") for i, v in enumerate(value))
    else:
        values = (integer(value, name),) * n_layer
    for i, v in enumerate(values):
        if v <= 0:
            raise ValueError(f"{name}[{i}]: must be positive, got {v}")
        bounded(v, f"{name}[{i}]")
    return values


def finite_positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: must be finite and positive, got {value!r}")
    return float(value)


def stacked(
    genes: Mapping[str, Any], backbone: str, per_layer_genes: bool = True, divide_width: bool = True
) -> dict[str, Any]:
    """``n_layer``, ``d_model`` and ``n_head``/``d_inner`` (per layer, or one value for all);
    with ``divide_width`` every head count must divide ``d_model``."""
    out = {"n_layer": positive(genes, "n_layer", backbone), "d_model": positive(genes, "d_model", backbone)}
    for name in ("n_head", "d_inner"):
        if per_layer_genes:
            out[name] = per_layer(genes.get(name), out["n_layer"], name)
        else:
            out[name] = positive(genes, name, backbone)
    heads = out["n_head"] if per_layer_genes else (out["n_head"],)
    for i, h in enumerate(heads if divide_width else ()):
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
