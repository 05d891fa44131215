"""Settings dataclasses whose fields carry their own limits: the one place a default is written.

A plugin (search method, proxy) or a stage declares its knobs as a frozen dataclass whose fields
come from ``setting``; ``schema`` turns the class into the JSON Schema fragment of its config block
(types from the annotations, ``Literal`` as an enum, limits and descriptions from ``setting``), so
the config schema, the defaults users see and the defaults of a direct Python call cannot drift
apart. ``check`` validates an instance against the same fragment (a dataclass calls it in
``__post_init__``), and ``from_config`` builds one from a validated config block::

    @dataclass(frozen=True)
    class MySettings:
        population: int = setting(100, minimum=2, doc="Candidates per generation.")
        selection: Literal["random", "tournament"] = setting("random")

        def __post_init__(self) -> None:
            check(self, "search.mine")
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, Literal, Union

import jsonschema

LIMITS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "pattern",
    "minLength",
    "maxLength",
)


def setting(
    default: Any = dataclasses.MISSING,
    *,
    doc: str = "",
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: float | None = None,
    exclusive_maximum: float | None = None,
    min_items: int | None = None,
    max_items: int | None = None,
    pattern: str | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    items: Mapping[str, Any] | None = None,
    config: bool = True,
) -> Any:
    """A dataclass field with its default and its limits (JSON Schema keywords; ``items`` adds
    keywords to an array's items, e.g. ``{"minimum": 0}``). ``config=False``: a field the caller
    sets (a seed, a sequence length from another section), not a key of the config block."""
    limits = {
        "minimum": minimum,
        "maximum": maximum,
        "exclusiveMinimum": exclusive_minimum,
        "exclusiveMaximum": exclusive_maximum,
        "minItems": min_items,
        "maxItems": max_items,
        "pattern": pattern,
        "minLength": min_length,
        "maxLength": max_length,
    }
    meta = {
        "doc": doc,
        "limits": {k: v for k, v in limits.items() if v is not None},
        "items": dict(items or {}),
        "config": config,
    }
    if isinstance(default, list | dict | set):
        raise TypeError("setting: a mutable default; use a tuple")
    return dataclasses.field(default=default, metadata=meta)


# -- the schema of a settings class ---------------------------------------------------------------
def _type_schema(tp: Any) -> dict[str, Any]:
    """JSON Schema of one annotation: int, float, bool, str, Literal, X | None, tuple/list of X."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        nullable = len(inner) < len(args)
        parts = [_type_schema(a) for a in inner]
        if len(parts) == 1:
            out = dict(parts[0])
        else:
            out = {"anyOf": parts}
        if nullable:
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
            elif "type" in out:
                out["type"] = [*([out["type"]] if isinstance(out["type"], str) else out["type"]), "null"]
            else:
                out = {"anyOf": [*out.get("anyOf", [out]), {"type": "null"}]}
        return out
    if origin is Literal:
        return {"enum": list(args)}
    if tp is dict or origin is dict:
        return {"type": "object"}
    if origin in (tuple, list):
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _type_schema(args[0])}
        if origin is tuple and args:
            return {"type": "array", "items": _type_schema(args[0]), "minItems": len(args), "maxItems": len(args)}
        return {"type": "array", "items": _type_schema(args[0]) if args else {}}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    if tp is Any:
        return {}
    raise TypeError(f"settings: no JSON Schema for annotation {tp!r}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


@cache
def schema(cls: type, description: str = "", with_defaults: bool = True) -> dict[str, Any]:
    """The JSON Schema fragment of the config block ``cls`` describes: an object rejecting unknown
    keys, ``default: {}`` (so the validator fills every field's default), one property per field.
    ``with_defaults=False`` leaves the fields' defaults out (another source fills them)."""
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    for f in _config_fields(cls):
        prop = _type_schema(hints[f.name])
        if f.metadata.get("items") and "items" in prop:
            prop["items"] = {**prop["items"], **f.metadata["items"]}
        for key, value in f.metadata.get("limits", {}).items():
            if key in ("minItems", "maxItems", "pattern", "minLength", "maxLength") or "enum" not in prop:
                prop[key] = value
        if with_defaults and f.default is not dataclasses.MISSING:
            prop["default"] = _jsonable(f.default)
        if f.metadata.get("doc"):
            prop["description"] = f.metadata["doc"]
        props[f.name] = prop
    out: dict[str, Any] = {"type": "object", "additionalProperties": False, "default": {}, "properties": props}
    if description or (cls.__doc__ or "").strip():
        out["description"] = description or " ".join((cls.__doc__ or "").split())
    return out


def _config_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init and f.metadata.get("config", True)]


def defaults(cls: type) -> dict[str, Any]:
    """Every config field's default, as the config holds it (lists for tuples)."""
    return {f.name: _jsonable(f.default) for f in _config_fields(cls) if f.default is not dataclasses.MISSING}


# -- instances --------------------------------------------------------------------------------------
def check(obj: Any, where: str) -> None:
    """Validate a settings instance against its own schema; ValueError naming ``where.<field>``."""
    values = {f.name: _jsonable(getattr(obj, f.name)) for f in _config_fields(type(obj))}
    validator = jsonschema.Draft202012Validator(schema(type(obj)))
    for err in sorted(validator.iter_errors(values), key=lambda e: list(e.absolute_path)):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        raise ValueError(f"{where}{path}: {err.message}")


def from_config(cls: type, values: Mapping[str, Any] | None, where: str) -> Any:
    """An instance of ``cls`` from a config block (lists become tuples; unknown keys are named)."""
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    known = {f.name for f in _config_fields(cls)}
    for key in values:
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown key (known: {', '.join(sorted(known))})")
    for key, value in values.items():
        if isinstance(value, list) and _is_tuple(hints[key]):
            values[key] = tuple(value)
    return cls(**values)


def _is_tuple(tp: Any) -> bool:
    if typing.get_origin(tp) is tuple:
        return True
    return (
        any(_is_tuple(a) for a in typing.get_args(tp)) if typing.get_origin(tp) in (Union, types.UnionType) else False
    )


__all__ = ["check", "defaults", "from_config", "schema", "setting"]
