"""Architecture descriptions: one immutable, hashable, JSON-round-tripping spec per candidate.

An ``ArchSpec`` is what every stage passes around. Its canonical JSON form (sorted keys, defaults
filled in, per-layer genes as lists, only the fields its backbone uses) is part of the public
interface: Parquet files and the CLI carry it, and ``arch_id`` is a hash of it, so the same
architecture always gets the same id whatever key order or defaults were written.

Backbones and their genes:

=================  =====================================================================
``gpt2``           ``n_layer``, ``d_model``, per-layer ``n_head`` and ``d_inner``, ``div_val``,
                   ``d_embed`` (default ``d_model``). Pre-LN, learned positions, GELU.
``transformer_xl`` as ``gpt2`` plus per-layer ``d_head`` (default ``d_model // n_head``),
                   ``mem_len`` (default 192) and ``pre_lnorm`` (default False: post-LN).
``opt``            ``n_layer``, ``d_model``, per-layer ``n_head`` and ``d_inner``. ReLU FFN,
                   plain tied embedding, learned positions.
``merino``         ``blocks`` (``d_model``, ``ffn_ratio``, ``n_layer`` each, widths
                   non-decreasing), ``d_head`` (default 64). Layers of a block share weights.
``par``            ``layers`` (PAR notation, e.g. ``"(sfff)x6 (f)x8"``; stored expanded),
                   ``d_model``, ``n_head``, ``d_inner``.
``bert``           ``n_layer``, ``d_model``, ``n_head``, ``d_inner`` (homogeneous encoder).
=================  =====================================================================

Embedding-side fields shared by all backbones: ``vocab_size`` (default 50257, the GPT-2
tokenizer), ``max_seq_len`` (default 1024; learned positional embeddings are this long),
``tie_weights`` (default True) and, for ``gpt2``/``transformer_xl``, ``cutoffs`` of the adaptive
embedding/softmax (default: LTS's 19997, 39997, 199997 below ``vocab_size``; used when
``div_val > 1`` for ``gpt2`` and always for ``transformer_xl``, as in LTS).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

BACKBONES = ("gpt2", "transformer_xl", "opt", "merino", "par", "bert")
LTS_CUTOFFS = (19997, 39997, 199997)
SUBLAYER_KINDS = {"s": "self-attention", "f": "feed-forward", "i": "identity"}

# Which optional fields each backbone keeps in its canonical form.
_FIELDS: dict[str, tuple[str, ...]] = {
    "gpt2": ("n_layer", "d_model", "n_head", "d_inner", "div_val", "d_embed", "cutoffs"),
    "transformer_xl": (
        "n_layer", "d_model", "n_head", "d_inner", "div_val", "d_embed", "cutoffs",
        "d_head", "mem_len", "pre_lnorm",
    ),
    "opt": ("n_layer", "d_model", "n_head", "d_inner"),
    "merino": ("blocks", "d_head"),
    "par": ("layers", "d_model", "n_head", "d_inner"),
    "bert": ("n_layer", "d_model", "n_head", "d_inner"),
}
_COMMON = ("backbone", "vocab_size", "max_seq_len", "tie_weights")
_PER_LAYER = ("n_head", "d_inner", "d_head")


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


@dataclass(frozen=True)
class ArchSpec:
    """A candidate architecture. Build with ``ArchSpec.from_dict`` / ``from_json`` or directly.

    Per-layer genes accept a scalar (broadcast to every layer) or a list of length ``n_layer``;
    they are stored as tuples. Construction validates and raises ``ValueError`` naming the field.
    """

    backbone: str
    n_layer: int | None = None
    d_model: int | None = None
    n_head: Any = None
    d_inner: Any = None
    div_val: int | None = None
    d_embed: int | None = None
    cutoffs: Any = None
    d_head: Any = None
    mem_len: int | None = None
    pre_lnorm: bool | None = None
    blocks: Any = None
    layers: str | None = None
    vocab_size: int = 50257
    max_seq_len: int = 1024
    tie_weights: bool = True
    _canonical: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone: unknown backbone {self.backbone!r}; expected one of {BACKBONES}")
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        keep = _FIELDS[self.backbone]
        for f in fields(self):
            if f.name.startswith("_") or f.name in _COMMON or f.name in keep:
                continue
            if getattr(self, f.name) is not None:
                raise ValueError(f"{f.name}: not a gene of backbone {self.backbone!r}")
        _positive(self, "vocab_size")
        _positive(self, "max_seq_len")
        set_("tie_weights", _boolean(self.tie_weights, "tie_weights"))
        getattr(self, f"_normalise_{self.backbone}")(set_)
        set_("_canonical", json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")))

    # -- per-backbone normalisation -------------------------------------------------------
    def _normalise_layered(self, set_, per_layer: bool) -> None:
        _positive(self, "n_layer")
        _positive(self, "d_model")
        for name in ("n_head", "d_inner"):
            if per_layer:
                set_(name, _per_layer(getattr(self, name), self.n_layer, name))
            else:
                _positive(self, name)
        heads = self.n_head if per_layer else (self.n_head,)
        for i, h in enumerate(heads):
            if self.d_model % h:
                where = f"n_head[{i}]" if per_layer else "n_head"
                raise ValueError(f"{where}: {h} heads do not divide d_model={self.d_model}")

    def _normalise_adaptive(self, set_) -> None:
        set_("div_val", 1 if self.div_val is None else self.div_val)
        _positive(self, "div_val")
        set_("d_embed", self.d_model if self.d_embed is None else self.d_embed)
        _positive(self, "d_embed")
        cutoffs = self.cutoffs
        if cutoffs is None:
            cutoffs = tuple(c for c in LTS_CUTOFFS if c < self.vocab_size)
        if not isinstance(cutoffs, (list, tuple)):
            raise ValueError(f"cutoffs: expected a list of integers, got {cutoffs!r}")
        cutoffs = tuple(cutoffs)
        for i, c in enumerate(cutoffs):
            if not isinstance(c, int) or isinstance(c, bool) or not 0 < c < self.vocab_size:
                raise ValueError(f"cutoffs[{i}]: {c!r} must be an integer in (0, vocab_size={self.vocab_size})")
            if i and c <= cutoffs[i - 1]:
                raise ValueError(f"cutoffs[{i}]: cutoffs must increase, got {list(cutoffs)}")
        set_("cutoffs", cutoffs)
        if self.div_val > 1:
            for i in range(len(cutoffs) + 1):
                if self.d_embed // self.div_val**i < 1:
                    raise ValueError(
                        f"div_val: d_embed={self.d_embed} // div_val**{i} leaves cluster {i} with no width"
                    )

    def _normalise_gpt2(self, set_) -> None:
        self._normalise_layered(set_, per_layer=True)
        self._normalise_adaptive(set_)

    def _normalise_transformer_xl(self, set_) -> None:
        self._normalise_layered(set_, per_layer=True)
        self._normalise_adaptive(set_)
        if self.d_head is None:
            set_("d_head", tuple(self.d_model // h for h in self.n_head))
        else:
            set_("d_head", _per_layer(self.d_head, self.n_layer, "d_head"))
        set_("mem_len", 192 if self.mem_len is None else self.mem_len)
        if not isinstance(self.mem_len, int) or self.mem_len < 0:
            raise ValueError(f"mem_len: must be a non-negative integer, got {self.mem_len!r}")
        set_("pre_lnorm", _boolean(False if self.pre_lnorm is None else self.pre_lnorm, "pre_lnorm"))

    def _normalise_opt(self, set_) -> None:
        self._normalise_layered(set_, per_layer=True)

    def _normalise_bert(self, set_) -> None:
        self._normalise_layered(set_, per_layer=False)

    def _normalise_par(self, set_) -> None:
        if self.layers is None:
            raise ValueError("layers: PAR backbone needs a layers string such as '(sfff)x6 (f)x8'")
        set_("layers", expand_par(self.layers))
        _positive(self, "d_model")
        _positive(self, "n_head")
        _positive(self, "d_inner")
        if self.d_model % self.n_head:
            raise ValueError(f"n_head: {self.n_head} heads do not divide d_model={self.d_model}")

    def _normalise_merino(self, set_) -> None:
        set_("d_head", 64 if self.d_head is None else self.d_head)
        _positive(self, "d_head")
        if not self.blocks:
            raise ValueError("blocks: MeRino backbone needs at least one block")
        blocks = []
        for i, b in enumerate(self.blocks):
            if isinstance(b, Mapping):
                unknown = set(b) - {"d_model", "ffn_ratio", "n_layer"}
                if unknown:
                    raise ValueError(f"blocks[{i}]: unknown keys {sorted(unknown)}")
                for key in ("d_model", "ffn_ratio", "n_layer"):
                    if key not in b:
                        raise ValueError(f"blocks[{i}].{key}: missing")
                ratio = b["ffn_ratio"]
                if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
                    raise ValueError(f"blocks[{i}].ffn_ratio: expected a number, got {ratio!r}")
                b = MerinoBlock(int_(b["d_model"], f"blocks[{i}].d_model"), float(ratio),
                                int_(b["n_layer"], f"blocks[{i}].n_layer"))
            elif not isinstance(b, MerinoBlock):
                raise ValueError(f"blocks[{i}]: expected a mapping, got {b!r}")
            for name in ("d_model", "n_layer"):
                if getattr(b, name) <= 0:
                    raise ValueError(f"blocks[{i}].{name}: must be positive, got {getattr(b, name)}")
            if not (math.isfinite(b.ffn_ratio) and b.ffn_ratio > 0) or b.d_inner < 1:
                raise ValueError(
                    f"blocks[{i}].ffn_ratio: must be finite and give an FFN width >= 1, got {b.ffn_ratio}"
                )
            if b.d_model % self.d_head:
                raise ValueError(f"blocks[{i}].d_model: {b.d_model} is not a multiple of d_head={self.d_head}")
            if blocks and b.d_model < blocks[-1].d_model:
                raise ValueError(
                    f"blocks[{i}].d_model: widths must not decrease ({blocks[-1].d_model} then {b.d_model})"
                )
            blocks.append(b)
        set_("blocks", tuple(blocks))

    # -- derived views ---------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        """Number of transformer layers (for ``par``: sub-layers that are not identity)."""
        if self.backbone == "merino":
            return sum(b.n_layer for b in self.blocks)
        if self.backbone == "par":
            return sum(c != "i" for c in self.layers)
        return self.n_layer

    @property
    def arch_id(self) -> str:
        """First 16 hex digits of the SHA-256 of the canonical JSON."""
        return hashlib.sha256(self._canonical.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in _COMMON + _FIELDS[self.backbone]:
            value = getattr(self, name)
            if name == "blocks":
                value = [b.to_dict() for b in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces, defaults filled in."""
        return self._canonical

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchSpec:
        if not isinstance(data, Mapping):
            raise ValueError(f"spec: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls) if not f.name.startswith("_")}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{sorted(unknown)[0]}: unknown field (known: {sorted(known)})")
        if "backbone" not in data:
            raise ValueError("backbone: missing")
        return cls(**dict(data))

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"spec: not valid JSON ({e})") from None
        return cls.from_dict(data)

    def with_(self, **changes: Any) -> ArchSpec:
        """A copy with some genes changed (re-validated)."""
        return replace(self, **changes)

    def layer_kinds(self) -> list[str]:
        """Sub-layer kinds in order (``par`` only): 's', 'f' or 'i'."""
        if self.backbone != "par":
            raise ValueError(f"layers: backbone {self.backbone!r} has no PAR layer string")
        return list(self.layers)


def int_(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    return value


def _positive(spec: ArchSpec, name: str) -> None:
    value = getattr(spec, name)
    if value is None:
        raise ValueError(f"{name}: missing (required by backbone {spec.backbone!r})")
    value = int_(value, name)
    if value <= 0:
        raise ValueError(f"{name}: must be positive, got {value}")
    object.__setattr__(spec, name, value)


def _boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    return value


def _per_layer(value: Any, n_layer: int, name: str) -> tuple[int, ...]:
    if value is None:
        raise ValueError(f"{name}: missing")
    if isinstance(value, (list, tuple)):
        if len(value) != n_layer:
            raise ValueError(f"{name}: has {len(value)} entries but n_layer={n_layer}")
        values = tuple(int_(v, f"{name}[{i}]") for i, v in enumerate(value))
    else:
        values = (int_(value, name),) * n_layer
    for i, v in enumerate(values):
        if v <= 0:
            raise ValueError(f"{name}[{i}]: must be positive, got {v}")
    return values


_PAR_GROUP = re.compile(r"\(([sfi]+)\)\s*(?:x\s*(\d+))?|([sfi]+)")


def expand_par(text: str) -> str:
    """Expand PAR notation (``"(sfff)x6 (f)x8"``, ``"sfsf"``) to a plain string of s/f/i."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"layers: expected a non-empty PAR string, got {text!r}")
    out, pos, src = [], 0, text.strip()
    while pos < len(src):
        if src[pos].isspace():
            pos += 1
            continue
        m = _PAR_GROUP.match(src, pos)
        if not m:
            raise ValueError(
                f"layers: cannot parse PAR string {text!r} at position {pos} ({src[pos:pos + 8]!r}); "
                "use s (self-attention), f (feed-forward), i (identity), groups like (sf)x4"
            )
        if m.group(1):
            times = int(m.group(2) or 1)
            if times <= 0:
                raise ValueError(f"layers: repeat count must be positive in {text!r}")
            out.append(m.group(1) * times)
        else:
            out.append(m.group(3))
        pos = m.end()
    return "".join(out)


def compress_par(layers: str) -> str:
    """Run-length PAR notation of an expanded string, for display: ``"sfffsfff"`` -> ``"(sfff)x2"``."""
    best = layers
    for period in range(1, len(layers) // 2 + 1):
        unit = layers[:period]
        reps = 1
        while layers[reps * period:(reps + 1) * period] == unit:
            reps += 1
        if reps > 1:
            rest = layers[reps * period:]
            cand = f"({unit})x{reps}" + (" " + compress_par(rest) if rest else "")
            if len(cand) < len(best):
                best = cand
    return best


def spec_from_any(value: ArchSpec | Mapping[str, Any] | str) -> ArchSpec:
    """Accept a spec, a dict or a JSON string."""
    if isinstance(value, ArchSpec):
        return value
    if isinstance(value, str):
        return ArchSpec.from_json(value)
    return ArchSpec.from_dict(value)
