"""Search spaces: declarative YAML files, seeded sampling, mutation and crossover.

A space file names a backbone, the fixed fields every candidate shares, and a choice list per
gene. Every search method works on a *genome*: a flat dict with one entry per scalar gene and, for
per-layer (or per-block) genes, one entry per possible position up to the maximum depth, as in
LTS. A candidate with fewer layers simply ignores the tail, so mutation and crossover never have to
repair list lengths. ``SearchSpace.decode`` turns a genome into an ``ArchSpec``.

Gene declarations (``genes:`` mapping)::

    n_layer: {min: 2, max: 16}                 # integers min..max inclusive (step optional)
    d_model: {min: 128, max: 1024, step: 64}
    n_head:  {choices: [2, 4, 8], per: layer}  # one value per layer
    d_inner: {min: 128, max: 4096, step: 64, per: layer}
    div_val: {choices: [1, 2, 4]}

``per: block`` genes belong to MeRino blocks (``n_block`` in ``fixed``); ``per: sublayer`` genes
to PAR sub-layers (``n_sublayer`` in ``fixed``). How a genome maps to a spec is the backbone
plugin's codec (``paretolm.core.genome.LayerCodec`` for layer-stacked backbones).

Constraints (``constraints:`` mapping, all optional): ``homogeneous`` (every layer shares the
first layer's per-layer genes), ``d_inner_min_ratio`` (LTS's ``d_inner >= 1.7 * d_model``),
``decoder_params: {min, max}``, ``heads_divide_width`` (drop head choices that do not divide
``d_model``; on by default).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paretolm.core import yamlfile
from paretolm.core.arch import COMMON, ArchSpec
from paretolm.core.backbones import get as get_backbone
from paretolm.core.counting import count
from paretolm.core.genome import Genome

SPACE_KEYS = {"name", "description", "backbone", "fixed", "genes", "constraints"}
GENE_KEYS = {"choices", "min", "max", "step", "per"}
MAX_CHOICES = 100_000


@dataclass(frozen=True)
class Gene:
    name: str
    choices: tuple[Any, ...]
    per: str | None = None  # None, "layer", "block" or "sublayer"


@dataclass
class SearchSpace:
    name: str
    backbone: str
    genes: dict[str, Gene]
    fixed: dict[str, Any] = field(default_factory=dict)
    constraints: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    max_tries: int = 10_000

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str | None = None) -> SearchSpace:
        if not isinstance(data, Mapping):
            raise ValueError(f"space: a search space must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - SPACE_KEYS)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown key in a search space (known: {', '.join(sorted(SPACE_KEYS))})")
        for key in ("backbone", "genes"):
            if key not in data:
                raise ValueError(f"{key}: missing from search space {name or data.get('name', '?')!r}")
        if not isinstance(data["genes"], Mapping) or not data["genes"]:
            raise ValueError("genes: expected a mapping of gene name -> choices")
        for key in ("fixed", "constraints"):
            if data.get(key) is not None and not isinstance(data[key], Mapping):
                raise ValueError(f"{key}: expected a mapping, got {data[key]!r}")
        genes = {gname: _parse_gene(gname, decl) for gname, decl in data["genes"].items()}
        space = cls(
            name=str(data.get("name", name or "space")),
            backbone=data["backbone"],
            genes=genes,
            fixed=dict(data.get("fixed") or {}),
            constraints=dict(data.get("constraints") or {}),
            description=str(data.get("description", "")),
        )
        space._check()
        return space

    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpace:
        """A space file; errors name the file, the line and the key."""
        path = Path(path)
        data = yamlfile.load(path)
        try:
            if not isinstance(data, Mapping):
                raise ValueError("space: a search space file must hold a mapping")
            return cls.from_dict(data, name=path.stem)
        except ValueError as e:
            key = str(e).split(":", 1)[0]
            parts = [int(p) if p.isdigit() else p for p in re.split(r"[.\[\]]+", key) if p]
            raise ValueError(f"{yamlfile.where(path, parts)}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        """The space as ``from_dict`` reads it (every gene as its explicit choices)."""
        genes = {g.name: {"choices": list(g.choices), **({"per": g.per} if g.per else {})} for g in self.genes.values()}
        return {
            "name": self.name,
            "backbone": self.backbone,
            "genes": genes,
            "fixed": dict(self.fixed),
            "constraints": dict(self.constraints),
            "description": self.description,
        }

    @property
    def codec(self) -> Any:
        """How genomes of this space's backbone map to specs (the backbone plugin's codec)."""
        return get_backbone(self.backbone).codec

    def _check(self) -> None:
        if not isinstance(self.backbone, str):
            raise ValueError(f"backbone: expected a backbone name, got {self.backbone!r}")
        plugin = get_backbone(self.backbone)
        known = {"homogeneous", "d_inner_min_ratio", "decoder_params", "heads_divide_width"}
        unknown = set(self.constraints) - known
        if unknown:
            raise ValueError(f"constraints.{sorted(unknown)[0]}: unknown constraint (known: {sorted(known)})")
        codec = self.codec
        genes = set(plugin.genes) | set(COMMON) | set(getattr(codec, "genome_genes", ()))
        for name in self.genes:
            if name not in genes:
                raise ValueError(
                    f"genes.{name}: not a gene of backbone {self.backbone!r} (its genes: {', '.join(sorted(genes))})"
                )
        for name in self.fixed:
            if name not in genes | set(getattr(codec, "fixed_keys", ())):
                raise ValueError(
                    f"fixed.{name}: not a gene of backbone {self.backbone!r} (its genes: {', '.join(sorted(genes))})"
                )
        for gene in self.genes.values():
            if gene.per is not None and gene.per != codec.per:
                raise ValueError(
                    f"genes.{gene.name}.per: backbone {self.backbone!r} takes per: {codec.per}, not {gene.per}"
                )
        codec.check(self)

    # -- genome layout ---------------------------------------------------------------------
    def _positions(self, gene: Gene) -> int:
        return 1 if gene.per is None else self.codec.positions(self)

    def keys(self) -> Iterator[tuple[str, Gene]]:
        """Every genome key with the gene that draws it."""
        for gene in self.genes.values():
            if gene.per is None:
                yield gene.name, gene
            else:
                for i in range(self._positions(gene)):
                    yield f"{gene.name}[{i}]", gene

    def random_genome(self, rng: random.Random) -> Genome:
        return {key: rng.choice(gene.choices) for key, gene in self.keys()}

    # -- decoding and constraints ----------------------------------------------------------
    def decode(self, genome: Genome) -> ArchSpec:
        """Turn a genome into a validated spec (raises ValueError for an impossible one)."""
        values = {"backbone": self.backbone, **self.fixed}
        values.pop("n_block", None)
        values.pop("n_sublayer", None)
        for gene in self.genes.values():
            if gene.per is None:
                values[gene.name] = genome[gene.name]
        return ArchSpec.from_dict(self.codec.decode(self, genome, values))

    def violation(self, spec: ArchSpec) -> str | None:
        """Why a valid spec breaks this space's constraints, or None."""
        why = self.codec.violation(self, spec)
        if why:
            return why
        bounds = self.constraints.get("decoder_params")
        if bounds:
            n = count(spec).decoder_params
            if n < bounds.get("min", 0) or n > bounds.get("max", float("inf")):
                return f"decoder_params={n} outside [{bounds.get('min', 0)}, {bounds.get('max', 'inf')}]"
        return None

    def _try_decode(self, genome: Genome, rng: random.Random) -> tuple[Genome, ArchSpec] | None:
        genome = self._repair(genome, rng)
        try:
            spec = self.decode(genome)
        except ValueError as e:
            self._last_rejection = str(e)
            return None
        why = self.violation(spec)
        if why:
            self._last_rejection = why
            return None
        return genome, spec

    def _repair(self, genome: Genome, rng: random.Random) -> Genome:
        return self.codec.repair(self, genome, rng)

    # -- the operators every search shares -------------------------------------------------
    def sample_genome(self, rng: random.Random) -> tuple[Genome, ArchSpec]:
        for _ in range(self.max_tries):
            found = self._try_decode(self.random_genome(rng), rng)
            if found is not None:
                return found
        raise ValueError(
            f"constraints: no valid architecture in {self.max_tries} draws from space {self.name!r}; "
            f"the last draw was rejected because {getattr(self, '_last_rejection', 'of its constraints')}"
        )

    def sample(self, n: int, seed: int, unique: bool = True) -> list[ArchSpec]:
        """``n`` specs drawn uniformly (rejection sampling under the constraints)."""
        rng = random.Random(seed)
        out: list[ArchSpec] = []
        seen: set[str] = set()
        tries = 0
        while len(out) < n:
            _, spec = self.sample_genome(rng)
            tries += 1
            if unique and spec.arch_id in seen:
                if tries > 50 * n + self.max_tries:
                    raise ValueError(f"n: space {self.name!r} has fewer than {n} distinct architectures")
                continue
            seen.add(spec.arch_id)
            out.append(spec)
        return out

    def mutate(self, genome: Genome, p: float, rng: random.Random) -> tuple[Genome, ArchSpec] | None:
        """Resample each genome entry with probability ``p``; None if no valid child in a few tries."""
        for _ in range(20):
            child = {k: (rng.choice(g.choices) if rng.random() < p else genome[k]) for k, g in self.keys()}
            found = self._try_decode(child, rng)
            if found is not None:
                return found
        return None

    def crossover(self, a: Genome, b: Genome, rng: random.Random) -> tuple[Genome, ArchSpec] | None:
        """Take each genome entry from one of two parents at random; None if no valid child."""
        for _ in range(20):
            child = {k: (a[k] if rng.random() < 0.5 else b[k]) for k, _ in self.keys()}
            found = self._try_decode(child, rng)
            if found is not None:
                return found
        return None

    def encode(self, spec: ArchSpec) -> Genome:
        """A genome that decodes to ``spec`` (tail positions filled with the first choice)."""
        genome: Genome = {}
        d = spec.to_dict()
        for key, gene in self.keys():
            if gene.per is None:
                genome[key] = d.get(gene.name, gene.choices[0])
            else:
                genome[key] = self.codec.encode_position(spec, gene, int(key[key.index("[") + 1 : -1]))
        return genome


def _parse_gene(name: str, decl: Any) -> Gene:
    if isinstance(decl, Sequence) and not isinstance(decl, str):
        decl = {"choices": list(decl)}
    if not isinstance(decl, Mapping):
        raise ValueError(f"genes.{name}: expected a mapping or a list of choices, got {decl!r}")
    unknown = sorted(set(decl) - GENE_KEYS)
    if unknown:
        raise ValueError(f"genes.{name}.{unknown[0]}: unknown key (known: {', '.join(sorted(GENE_KEYS))})")
    per = decl.get("per")
    if per is not None and not isinstance(per, str):
        raise ValueError(f"genes.{name}.per: expected layer, block or sublayer, got {per!r}")
    if "choices" in decl:
        choices = tuple(decl["choices"])
    elif "min" in decl and "max" in decl:
        lo, hi, step = decl["min"], decl["max"], decl.get("step", 1)
        for key, value in (("min", lo), ("max", hi), ("step", step)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"genes.{name}.{key}: expected a number, got {value!r}")
        if step <= 0 or hi < lo:
            raise ValueError(f"genes.{name}: need min <= max and step > 0, got {lo}, {hi}, {step}")
        count = int(round((hi - lo) / step)) + 1
        if count > MAX_CHOICES:
            raise ValueError(f"genes.{name}: {count} choices; at most {MAX_CHOICES} (raise step)")
        choices = tuple(_tidy(lo + i * step) for i in range(count) if lo + i * step <= hi + 1e-9)
    else:
        raise ValueError(f"genes.{name}: give either choices or min/max(/step)")
    if not choices:
        raise ValueError(f"genes.{name}: no choices")
    return Gene(name=name, choices=choices, per=per)


def _tidy(x: float) -> int | float:
    return int(x) if float(x).is_integer() else round(float(x), 10)


def load_space(name_or_path: str | Path, spaces_dir: str | Path = "config/spaces") -> SearchSpace:
    """A space by file path or by name under ``spaces_dir``."""
    path = Path(name_or_path)
    if not path.suffix:
        path = Path(spaces_dir) / f"{name_or_path}.yaml"
    if not path.exists():
        raise ValueError(f"space: no search space file {str(path)!r}")
    return SearchSpace.from_yaml(path)
