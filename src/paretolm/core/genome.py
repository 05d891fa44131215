"""Genomes: how a search space's flat choices map to a backbone's genes.

Every search method works on a *genome*: a flat dict with one entry per scalar gene and, for
per-layer (per-block, per-sub-layer) genes, one entry per position up to the deepest candidate,
as in LTS. A backbone's codec says how a genome decodes into genes; ``LayerCodec`` is the one of
layer-stacked backbones. Codecs read the space duck-typed (``genes``, ``fixed``, ``constraints``),
so this module needs neither the spaces nor the backbones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Genome = dict[str, Any]


class LayerCodec:
    """Genome of a layer-stacked space (LTS): ``per: layer`` genes get one entry per position up
    to the deepest ``n_layer``; a shallower candidate ignores the tail. ``homogeneous`` copies the
    first layer's genes to every layer."""

    per = "layer"

    def positions(self, space: Any) -> int:
        if "n_layer" in space.genes:
            return max(space.genes["n_layer"].choices)
        return int(space.fixed["n_layer"])

    def check(self, space: Any) -> None:
        for gene in space.genes.values():
            if gene.per == "layer" and "n_layer" not in space.genes and "n_layer" not in space.fixed:
                raise ValueError(f"genes.{gene.name}: per-layer gene needs an n_layer gene or fixed value")

    def decode(self, space: Any, genome: Mapping[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        n = values["n_layer"]
        homogeneous = bool(space.constraints.get("homogeneous", False))
        for gene in space.genes.values():
            if gene.per == "layer":
                values[gene.name] = [genome[f"{gene.name}[{0 if homogeneous else i}]"] for i in range(n)]
        return values

    def encode_position(self, spec: Any, gene: Any, i: int) -> Any:
        values = spec.get(gene.name)
        return values[i] if i < len(values) else gene.choices[0]

    def violation(self, space: Any, spec: Any) -> str | None:
        ratio = space.constraints.get("d_inner_min_ratio")
        if ratio:
            inner = spec.d_inner if isinstance(spec.d_inner, tuple) else (spec.d_inner,)
            for i, d in enumerate(inner):
                if d < ratio * spec.d_model:
                    return f"d_inner[{i}]={d} < {ratio} * d_model={spec.d_model}"
        return None

    def repair(self, space: Any, genome: Genome, rng: Any) -> Genome:
        """Redraw, uniformly among the valid choices, head counts that do not divide the width,
        key/value head counts that do not divide their layer's head count and inner widths under
        ``d_inner_min_ratio``: the same as drawing them conditionally on ``d_model`` (and
        ``n_head``), and far cheaper than rejecting whole deep candidates."""
        width = genome.get("d_model", space.fixed.get("d_model"))
        if not isinstance(width, int):
            return genome
        ratio = space.constraints.get("d_inner_min_ratio") or 0
        ok = {
            "n_head": (lambda h, key: width % h == 0) if space.constraints.get("heads_divide_width", True) else None,
            "d_inner": (lambda d, key: d >= ratio * width) if ratio else None,
            # grouped-query attention: a layer's key/value heads divide its query heads
            "n_kv_head": lambda g, key: self._heads(space, out, key) % g == 0,
        }
        out = dict(genome)
        # key/value heads in a second pass, after the heads they divide
        for names in (("n_head", "d_inner"), ("n_kv_head",)):
            for key, gene in space.keys():
                test = ok.get(gene.name) if gene.name in names else None
                if test is None or test(out[key], key):
                    continue
                valid = [c for c in gene.choices if test(c, key)]
                if valid:
                    out[key] = rng.choice(valid)
        return out

    @staticmethod
    def _heads(space: Any, genome: Genome, key: str) -> int:
        """The query heads of the layer of genome entry ``key`` (``n_kv_head[3]`` -> ``n_head[3]``)."""
        index = key[key.index("[") :] if "[" in key else ""
        for candidate in (f"n_head{index}", "n_head[0]", "n_head"):
            if candidate in genome:
                return int(genome[candidate])
        fixed = space.fixed.get("n_head")
        return int(fixed[0] if isinstance(fixed, (list, tuple)) else fixed)
