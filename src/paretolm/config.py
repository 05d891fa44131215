"""The workflow's configuration: loading, validation, and the lookups every stage shares.

The Snakefile and the command line share this module, so both see the same defaults and the same
checks. The schema (``workflow/schemas/config.schema.yaml``) owns every default, limit and enum:
``validate_config`` fills the defaults while validating, then runs the cross-field checks JSON
Schema cannot express. Nothing here restates a default. Which part of the config each stage reads
is declared by the stage itself (``paretolm.stages``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

SCHEMA = Path("workflow/schemas/config.schema.yaml")
CONFIG = Path("config/config.yaml")

# Keys of a hardware target that route jobs but cannot change a measurement.
ROUTING_KEYS = ("resources", "slurm")


def schema_path(root: str | Path = ".") -> Path:
    """The config schema: under ``root`` (a checkout, or a copy of its workflow), else in the
    checkout this package was installed from."""
    path = Path(root) / SCHEMA
    if path.exists():
        return path
    return Path(__file__).resolve().parents[2] / SCHEMA


def load_schema(root: str | Path = ".", schema: str | Path | None = None) -> dict[str, Any]:
    with open(schema if schema is not None else schema_path(root)) as fh:
        return yaml.safe_load(fh)


def validate_config(config: dict[str, Any], root: str | Path = ".",
                    schema: str | Path | None = None) -> dict[str, Any]:
    """Validate ``config`` in place against the schema, fill defaults, run the cross-field checks
    and return it. ``schema`` is the schema file (default: ``schema_path(root)``).

    Raises ``ValueError`` naming the offending key (for example ``search: additional properties
    are not allowed ('iteratoins' was unexpected)``)."""
    import jsonschema

    loaded = load_schema(root, schema)
    validator_cls = jsonschema.validators.validator_for(loaded)
    filling = _with_defaults(validator_cls)
    errors = sorted(filling(loaded).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "config"
        raise ValueError(f"{where}: {err.message}")
    check_consistency(config)
    return config


def _with_defaults(validator_cls: Any) -> Any:
    """A validator class that fills ``default`` values of missing properties while validating
    (nested objects too, including the entries of ``additionalProperties`` maps)."""
    import jsonschema

    validate_properties = validator_cls.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: Any, instance: Any, schema: Any) -> Any:
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_cls, {"properties": set_defaults})


def check_consistency(config: Mapping[str, Any]) -> None:
    """Cross-field checks JSON Schema cannot express; ValueError naming the field."""
    prof = config["profile"]
    if prof["max_repeats"] < prof["min_repeats"]:
        raise ValueError(
            f"profile.max_repeats: {prof['max_repeats']} is below profile.min_repeats={prof['min_repeats']}"
        )
    search = config["search"]
    from .methods import METHODS

    if search["method"] not in METHODS:
        raise ValueError(f"search.method: unknown method {search['method']!r} "
                         f"(known: {', '.join(METHODS.names())})")
    if search["parents"] > search["population"]:
        raise ValueError(
            f"search.parents: {search['parents']} is more than search.population={search['population']}"
        )
    obj = search["objectives"]
    n_obj = bool(obj["proxy"]) + bool(obj["latency"]) + bool(obj["memory"])
    if n_obj == 0:
        raise ValueError("search.objectives: switch on at least one objective")
    if obj["memory"] and not prof["memory"]:
        raise ValueError("search.objectives.memory: needs profile.memory: true")
    proxy = obj["proxy"]
    if proxy and proxy not in config["proxies"]["names"]:
        raise ValueError(
            f"search.objectives.proxy: {proxy!r} is not among proxies.names {config['proxies']['names']}"
        )
    bound = search["bounds"]["params"]
    col = bound["column"]
    if col not in config["proxies"]["names"] and (bound["min"] is not None or bound["max"] is not None):
        raise ValueError(f"search.bounds.params.column: {col!r} is not among proxies.names")
    for name in config["targets"]:
        if name not in config["hardware"]:
            known = sorted(config["hardware"])
            raise ValueError(f"targets: {name!r} is not a hardware target (known: {known})")


def load_config(path: str | Path = CONFIG, overrides: Mapping[str, Any] | None = None,
                root: str | Path = ".") -> dict[str, Any]:
    """Read, merge ``overrides`` (nested), validate and fill defaults: the config a run would use."""
    with open(path) as fh:
        config = yaml.safe_load(fh) or {}
    if overrides:
        config = merge(config, overrides)
    return validate_config(config, root)


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Nested dict merge as Snakemake does for ``--configfile`` layers (``extra`` wins)."""
    out = copy.deepcopy(dict(base))
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# -- lookups the stages share -------------------------------------------------------------------
def space_file(config: Mapping[str, Any], space: str) -> Path:
    """The YAML file of search space ``space`` (a file stem under ``spaces_dir``)."""
    return Path(config["spaces_dir"]) / f"{space}.yaml"


def space_content(config: Mapping[str, Any], space: str) -> dict[str, Any]:
    """The definition of search space ``space``, as its YAML file holds it."""
    path = space_file(config, space)
    if not path.exists():
        raise ValueError(f"space: no search space file {str(path)!r} (spaces_dir={config['spaces_dir']!r})")
    with open(path) as fh:
        return yaml.safe_load(fh)


def hardware_target(config: Mapping[str, Any], hardware: str) -> dict[str, Any]:
    """The settings of hardware target ``hardware``; ValueError naming the configured ones."""
    targets = config["hardware"]
    if hardware not in targets:
        raise ValueError(f"hardware: unknown target {hardware!r} (configured: {', '.join(sorted(targets))})")
    return dict(targets[hardware])


def measurement_settings(config: Mapping[str, Any], hardware: str) -> dict[str, Any]:
    """What a latency/memory number depends on: the target (minus job routing) and the
    profile settings (minus the cache location)."""
    target = {k: v for k, v in hardware_target(config, hardware).items() if k not in ROUTING_KEYS}
    prof = {k: v for k, v in config["profile"].items() if k != "cache"}
    return {"hardware": target, "profile": prof}
