"""Architecture descriptions: one immutable, hashable, JSON-round-tripping spec per candidate.

An ``ArchSpec`` is what every stage passes around: a backbone name plus that backbone's genes,
validated by the backbone plugin (``paretolm.core.backbones``) on construction. Its canonical JSON
(sorted keys, defaults filled in, per-layer genes as lists, only the fields its backbone uses) is
part of the public interface: Parquet files and the CLI carry it, and ``arch_id`` is a hash of it,
so the same architecture always gets the same id whatever key order or defaults were written.
The genes of each backbone are listed in docs/backbones.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from paretolm.core.backbones import Backbone
from paretolm.core.backbones import get as get_backbone
from paretolm.core.blocks import Block
from paretolm.core.genes import boolean, positive

# Fields every backbone has, with their defaults (the GPT-2 tokenizer's vocabulary).
COMMON: dict[str, Any] = {"vocab_size": 50257, "max_seq_len": 1024, "tie_weights": True}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


class ArchSpec:
    """A candidate architecture: ``ArchSpec("gpt2", n_layer=2, ...)``, ``from_dict`` or ``from_json``.

    Genes are read as attributes (``spec.d_model``); per-layer genes accept a scalar (broadcast to
    every layer) or a list and are stored as tuples. Construction validates and raises
    ``ValueError`` naming the field (and layer). Instances are immutable; ``with_`` makes a changed
    copy.
    """

    __slots__ = ("backbone", "_values", "_canonical")

    def __init__(self, backbone: str, **genes: Any):
        plugin = get_backbone(backbone) if isinstance(backbone, str) else None
        if plugin is None:
            raise ValueError(f"backbone: expected a backbone name, got {backbone!r}")
        common = {name: genes.pop(name, default) for name, default in COMMON.items()}
        common["vocab_size"] = positive(common, "vocab_size", backbone)
        common["max_seq_len"] = positive(common, "max_seq_len", backbone)
        common["tie_weights"] = boolean(common["tie_weights"], "tie_weights")
        for name in genes:
            if name not in plugin.genes:
                raise ValueError(f"{name}: not a gene of backbone {backbone!r} (its genes: {', '.join(plugin.genes)})")
        values = {**common, **plugin.normalise(dict(genes), common)}
        setter = object.__setattr__
        setter(self, "backbone", backbone)
        setter(self, "_values", values)
        setter(self, "_canonical", json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")))

    # -- attribute access: genes read like fields; the object is frozen -----------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"backbone {self.backbone!r} has no gene {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"ArchSpec is immutable; use spec.with_({name}=...)")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArchSpec) and other._canonical == self._canonical

    def __hash__(self) -> int:
        return hash(self._canonical)

    def __repr__(self) -> str:
        return f"ArchSpec({self._canonical})"

    def __reduce__(self) -> tuple:  # copy/deepcopy and multiprocessing rebuild from the JSON
        return (ArchSpec.from_json, (self._canonical,))

    # -- the plugin's views ---------------------------------------------------------------------
    @property
    def plugin(self) -> Backbone:
        return get_backbone(self.backbone)

    def get(self, name: str, default: Any = None) -> Any:
        """A gene's value, or ``default`` when this backbone has no such gene."""
        return self._values.get(name, default)

    def block_view(self) -> list[Block]:
        """The decoder's blocks (``paretolm.core.blocks``), as the backbone describes them."""
        return self.plugin.blocks(self)

    @property
    def num_layers(self) -> int:
        """Number of transformer layers (PAR: sub-layers that are not identity; MeRino: the depth)."""
        return sum(block.times for block in self.block_view())

    @property
    def arch_id(self) -> str:
        """First 16 hex digits of the SHA-256 of the canonical JSON."""
        return hashlib.sha256(self._canonical.encode()).hexdigest()[:16]

    # -- serialisation --------------------------------------------------------------------------
    def genes(self) -> dict[str, Any]:
        """Every field (common ones included) as stored: tuples, block records."""
        return dict(self._values)

    def to_dict(self) -> dict[str, Any]:
        return {"backbone": self.backbone, **{k: _jsonable(v) for k, v in self._values.items()}}

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces, defaults filled in."""
        return self._canonical

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchSpec:
        if not isinstance(data, Mapping):
            raise ValueError(f"spec: expected a JSON object, got {type(data).__name__}")
        if "backbone" not in data:
            raise ValueError("backbone: missing")
        values = dict(data)
        return cls(values.pop("backbone"), **values)

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"spec: not valid JSON ({e})") from None
        return cls.from_dict(data)

    def with_(self, **changes: Any) -> ArchSpec:
        """A copy with some genes changed (re-validated)."""
        return ArchSpec(self.backbone, **{**self._values, **changes})


def spec_from_any(value: ArchSpec | Mapping[str, Any] | str) -> ArchSpec:
    """Accept a spec, a dict or a JSON string."""
    if isinstance(value, ArchSpec):
        return value
    if isinstance(value, str):
        return ArchSpec.from_json(value)
    return ArchSpec.from_dict(value)
