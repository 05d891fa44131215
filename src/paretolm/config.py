"""The workflow's configuration: loading, validation, and the lookups every stage shares.

The Snakefile and the command line share this module, so both see the same defaults and the same
checks. The schema (``workflow/schemas/config.schema.yaml``) owns every default, limit and enum:
``validate_config`` fills the defaults while validating, then runs the cross-field checks JSON
Schema cannot express. Nothing here restates a default. Which part of the config each stage reads
is declared by the stage itself (``paretolm.stages``).
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from paretolm.core import yamlfile
from paretolm.core.arch import ArchSpec
from paretolm.core.settings import schema as settings_schema
from paretolm.core.spaces import SearchSpace
from paretolm.data import DatasetSpec, TokenizerSpec
from paretolm.hardware.runtimes import RUNTIMES
from paretolm.hardware.settings import ProfileSettings
from paretolm.hardware.sources import target_source
from paretolm.proxies import PROXIES
from paretolm.search.driver import VerifySettings
from paretolm.search.methods import METHODS
from paretolm.training.recipe import TrainConfig
from paretolm.validation.tasks import ZERO_SHOT_SETS

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
    """The config schema: the file's, with the blocks the plugins own filled in (``with_plugins``)."""
    with open(schema if schema is not None else schema_path(root)) as fh:
        return with_plugins(yaml.safe_load(fh))


def with_plugins(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` with what the code declares: one block ``search.<method>`` per search method and
    ``proxies.settings.<proxy>`` per proxy with settings, generated from their settings
    dataclasses; ``profile``, ``search.verify`` and the recipe keys of ``train`` from theirs; and
    the enums of a target's ``runtime``, ``device`` and ``dtype`` from the runtimes. Nothing here
    imports torch."""
    out = copy.deepcopy(dict(schema))
    props = out["properties"]
    props["profile"] = copy.deepcopy(settings_schema(ProfileSettings))
    props["search"]["properties"]["verify"] = copy.deepcopy(settings_schema(VerifySettings))
    train = props["train"]  # the recipe's keys without defaults (train.preset fills them), then the file's
    train["properties"] = {
        **copy.deepcopy(settings_schema(TrainConfig, with_defaults=False)["properties"]),
        **train["properties"],
    }
    search = props["search"]["properties"]
    for name, method in METHODS.items():
        search[name] = copy.deepcopy(settings_schema(method.settings))
    proxy_settings = props["proxies"]["properties"]["settings"]["properties"]
    for name, p in PROXIES.items():
        if p.settings is not None:
            proxy_settings[name] = copy.deepcopy(settings_schema(p.settings))
    target = props["hardware"]["additionalProperties"]["properties"]
    runtimes = [r for _, r in RUNTIMES.items()]
    target["runtime"]["enum"] = [r.name for r in runtimes]
    target["device"]["enum"] = list(dict.fromkeys(d for r in runtimes for d in r.devices))
    target["dtype"]["enum"] = list(dict.fromkeys(d for r in runtimes for d in r.dtypes))
    return out


def validate_config(
    config: dict[str, Any], root: str | Path = ".", schema: str | Path | None = None, files: Sequence[str | Path] = ()
) -> dict[str, Any]:
    """Validate ``config`` in place against the schema, fill defaults, run the cross-field checks
    and return it. ``schema`` is the schema file (default: ``schema_path(root)``); ``files`` are
    the config files the dict came from, so an error can name the file and line of the key.

    Strings where the schema wants a number, a boolean or null (``--config 'sample={n: 6}'``
    arrives as ``'6'``) are read as YAML scalars first. Raises ``ValueError`` naming the key
    (``search.iteratoins: unknown key (did you mean 'iterations'?) [config/config.yaml:93]``)."""
    loaded = load_schema(root, schema)
    coerce(config, loaded)
    validator_cls = jsonschema.validators.validator_for(loaded)
    filling = _with_defaults(validator_cls)
    errors = sorted(filling(loaded).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        path, message = _describe(errors[0])
        raise ValueError(f"{'.'.join(map(str, path)) or 'config'}: {message}{_located(files, path)}")
    try:
        check_consistency(config)
    except ValueError as e:
        key = str(e).split(":", 1)[0]
        raise ValueError(f"{e}{_located(files, key.split('.'))}") from None
    return config


def coerce(instance: Any, schema: Mapping[str, Any]) -> Any:
    """Turn string leaves into the number, boolean or null the schema asks for (in place for
    mappings and lists); a string that does not parse as that type is left for the validator."""
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, value in instance.items():
            sub = props.get(key, extra if isinstance(extra, Mapping) else None)
            if sub is not None:
                instance[key] = coerce(value, sub)
        return instance
    if isinstance(instance, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            instance[:] = [coerce(v, items) for v in instance]
        return instance
    if isinstance(instance, str):
        types = schema.get("type", [])
        types = [types] if isinstance(types, str) else list(types)
        if "enum" in schema:
            types += sorted({_json_type(v) for v in schema["enum"]} - {"string"})
        wanted = [t for t in types if t in ("integer", "number", "boolean", "null")]
        if wanted and "string" not in types:
            try:
                value = yaml.safe_load(instance)
            except yaml.YAMLError:
                return instance
            if _json_type(value) in wanted or (_json_type(value) == "integer" and "number" in wanted):
                return value
    return instance


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string" if isinstance(value, str) else type(value).__name__


def _describe(err: Any) -> tuple[list[Any], str]:
    """A short message for one schema error (jsonschema's own can print a whole config)."""
    path = list(err.absolute_path)
    if err.validator == "additionalProperties":
        known = sorted(err.schema.get("properties", {}))
        unexpected = sorted(set(err.instance) - set(known))
        key = unexpected[0] if unexpected else "?"
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
        return [*path, key], f"unknown key ({hint})"
    if err.validator == "type":
        wanted = err.validator_value if isinstance(err.validator_value, str) else " or ".join(err.validator_value)
        return path, f"expected {wanted}, got {_short(err.instance)}"
    if err.validator == "enum":
        return path, f"expected one of {err.validator_value}, got {_short(err.instance)}"
    message = err.message
    return path, message if len(message) <= 300 else message[:300] + "..."


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _located(files: Sequence[str | Path], path: Sequence[Any]) -> str:
    """`` [file:line]`` of the last config file that sets ``path`` (later files win), or ''."""
    keys = [p for p in path if p != ""]
    for exact in (True, False):  # the file that holds the whole key path, else the nearest parent
        for f in reversed([Path(f) for f in files]):
            line = yamlfile.line_of(f, keys, exact=exact)
            if line:
                return f" [{f}:{line}]"
    return ""


def _with_defaults(validator_cls: Any) -> Any:
    """A validator class that fills ``default`` values of missing properties while validating
    (nested objects too, including the entries of ``additionalProperties`` maps)."""
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
    check_search(config)
    for name in config["targets"]:
        if name not in config["hardware"]:
            known = sorted(config["hardware"])
            raise ValueError(f"targets: {name!r} is not a hardware target (known: {known})")
    for name, target in config["hardware"].items():
        target_source(name, target)
    check_names(config)


# The keys of the search section every method shares; the others are blocks of one method each.
SEARCH_KEYS = ("method", "space", "seed", "measure", "objectives", "bounds", "reference", "plot", "verify")


def check_search(config: Mapping[str, Any]) -> None:
    """The search section's cross-field checks: the method is registered, the objectives and
    bounds name proxies that are scored, the reference point has one value per objective, and
    the configured method gets what it needs (``check_method``)."""
    search = config["search"]
    if search["method"] not in METHODS:
        raise ValueError(f"search.method: unknown method {search['method']!r} (known: {', '.join(METHODS.names())})")
    obj = search["objectives"]
    if not (obj["proxy"] or obj["latency"] or obj["memory"]):
        raise ValueError("search.objectives: switch on at least one objective")
    if obj["memory"] and not config["profile"]["memory"]:
        raise ValueError("search.objectives.memory: needs profile.memory: true")
    proxy = obj["proxy"]
    if proxy and proxy not in config["proxies"]["names"]:
        raise ValueError(f"search.objectives.proxy: {proxy!r} is not among proxies.names {config['proxies']['names']}")
    bound = search["bounds"]["params"]
    col = bound["column"]
    if col not in config["proxies"]["names"] and (bound["min"] is not None or bound["max"] is not None):
        raise ValueError(f"search.bounds.params.column: {col!r} is not among proxies.names")
    if search["reference"] is not None:
        wanted = [
            c
            for c, on in ((proxy, bool(proxy)), ("latency_ms", obj["latency"]), ("peak_memory_mb", obj["memory"]))
            if on
        ]
        if sorted(search["reference"]) != sorted(wanted):
            raise ValueError(
                f"search.reference: needs exactly one value for each objective {wanted}, "
                f"got {sorted(search['reference'])}"
            )
    check_method(config, search["method"])


def method_space(config: Mapping[str, Any], method: str) -> str:
    """The space ``method`` searches: its block's ``space``, else ``search.space``."""
    block = config["search"].get(method) or {}
    return block.get("space") or config["search"]["space"]


def check_method(config: Mapping[str, Any], method: str) -> None:
    """What ``method`` needs from the config, checked before any job: its space file parses, its
    space has the backbone the method searches, and the method's own ``check``."""
    if method not in METHODS:
        raise ValueError(f"search.method: unknown method {method!r} (known: {', '.join(METHODS.names())})")
    plugin = METHODS.get(method)
    block = config["search"].get(method) or {}
    space = method_space(config, method)
    where = f"search.{method}.space" if block.get("space") else "search.space"
    path = space_file(config, space)
    if not path.exists():
        raise ValueError(f"{where}: no search space file {str(path)!r} (spaces_dir={config['spaces_dir']!r})")
    parsed = SearchSpace.from_yaml(path)
    if plugin.backbone is not None and parsed.backbone != plugin.backbone:
        raise ValueError(
            f"{where}: {method} searches a {plugin.backbone} space; {space!r} is a {parsed.backbone} space"
        )
    if plugin.latency_bound and config["search"]["bounds"]["latency_ms_max"] is None:
        raise ValueError(f"search.bounds.latency_ms_max: {method} searches under an upper latency bound; set one")
    plugin.check(config, parsed)


def check_names(config: Mapping[str, Any]) -> None:
    """Every name the config refers to exists and every value only code can judge is valid, in
    both halves of the workflow, so nothing fails after hours of work: proxies and their
    settings, spaces (their files parse), datasets, tokenizers, the training recipe, zero-shot
    tasks, validation sources and bounds."""

    def known(kind: str, names: Any) -> str:
        return f"(known {kind}: {', '.join(sorted(names)) or 'none'})"

    proxies = config["proxies"]
    for i, name in enumerate(proxies["names"]):
        if name not in PROXIES:
            raise ValueError(f"proxies.names[{i}]: unknown proxy {name!r} {known('proxies', PROXIES.names())}")
    settings = {}
    for name, values in (proxies.get("settings") or {}).items():
        if name not in PROXIES:
            raise ValueError(f"proxies.settings.{name}: unknown proxy {known('proxies', PROXIES.names())}")
        settings[name] = PROXIES.get(name).make_settings(values)
    need = [n for n in proxies["names"] if PROXIES.get(n).needs_data]
    if need and not proxies.get("data"):
        raise ValueError(f"proxies.data: proxies {need} need a token batch; configure proxies.data")
    for i, name in enumerate(config["validation"]["proxies"] or []):
        if name not in PROXIES:
            raise ValueError(f"validation.proxies[{i}]: unknown proxy {name!r} {known('proxies', PROXIES.names())}")
    for name in dict.fromkeys([*proxies["names"], *(config["validation"]["proxies"] or [])]):
        plugin = PROXIES.get(name)
        if plugin.check is not None:  # what a scored proxy needs from the rest of the config
            plugin.check(config, settings.get(name) or plugin.make_settings(None))

    bound = (config["search"].get("bounds") or {}).get("params") or {}
    if bound.get("min") is not None and bound.get("max") is not None and bound["min"] > bound["max"]:
        raise ValueError(f"search.bounds.params.min: {bound['min']} is above max={bound['max']}")

    spaces = {*config["sample"]["spaces"], config["search"]["space"]}
    spaces |= {
        src["space"] for src in config["validation"]["sources"] if src.get("kind") == "sample" and "space" in src
    }
    for space in sorted(spaces):
        path = space_file(config, space)
        if not path.exists():
            raise ValueError(
                f"space: no search space file {str(path)!r} for space {space!r} (spaces_dir={config['spaces_dir']!r})"
            )
        SearchSpace.from_yaml(path)

    datasets, tokenizers = config["datasets"], config["tokenizers"]
    for name, entry in datasets.items():
        DatasetSpec.from_config(name, entry)
    for name, entry in tokenizers.items():
        tok = TokenizerSpec.from_config(name, entry)
        if tok.train_on and tok.train_on not in datasets:
            raise ValueError(
                f"tokenizers.{name}.train_on: unknown dataset {tok.train_on!r} {known('datasets', datasets)}"
            )
    train = config["train"]  # unset in a search-only config; the validation stages then ask for them
    if train["dataset"] is not None and train["dataset"] not in datasets:
        raise ValueError(f"train.dataset: unknown dataset {train['dataset']!r} {known('datasets', datasets)}")
    if train["tokenizer"] is not None and train["tokenizer"] not in tokenizers:
        raise ValueError(f"train.tokenizer: unknown tokenizer {train['tokenizer']!r} {known('tokenizers', tokenizers)}")
    routing = ("dataset", "tokenizer", "cache_dir", "mem_mb", "runtime")
    recipe = TrainConfig.from_dict({k: v for k, v in train.items() if k not in routing})
    if recipe.budgets and train["dataset"] is not None:
        splits = DatasetSpec.from_config(train["dataset"], datasets[train["dataset"]]).splits()
        if "validation" not in splits:
            raise ValueError(
                f"train.budgets: scored on the validation split, which dataset "
                f"{train['dataset']!r} does not have (splits: {list(splits)}); give it one "
                f"or set train.budgets: []"
            )
    data = proxies.get("data") or {}
    for key, pool, kind in (("dataset", datasets, "datasets"), ("tokenizer", tokenizers, "tokenizers")):
        if key in data and data[key] not in pool:
            raise ValueError(f"proxies.data.{key}: unknown {key} {data[key]!r} {known(kind, pool)}")

    evaluate = config["evaluate"]
    for name in evaluate["datasets"]:
        if name not in datasets:
            raise ValueError(f"evaluate.datasets.{name}: unknown dataset {known('datasets', datasets)}")
    zero_shot = evaluate["zero_shot"]
    for i, task in enumerate(zero_shot["tasks"]):
        if task not in ZERO_SHOT_SETS:
            raise ValueError(f"evaluate.zero_shot.tasks[{i}]: unknown task {task!r} {known('tasks', ZERO_SHOT_SETS)}")
    limit = zero_shot["limit"]
    if limit is not None and not (limit >= 1 and float(limit).is_integer() or 0 < limit < 1):
        raise ValueError(f"evaluate.zero_shot.limit: {limit!r} must be a count >= 1, a fraction in (0, 1), or null")

    validation = config["validation"]
    hardware = config["hardware"]
    if validation["hardware"] is not None and validation["hardware"] not in hardware:
        raise ValueError(f"validation.hardware: unknown target {validation['hardware']!r} {known('targets', hardware)}")
    for i, src in enumerate(validation["sources"]):
        where = f"validation.sources[{i}]"
        needs = {"sample": ("space",), "frontier": ("hardware",), "baselines": ("base", "n_layer")}[src["kind"]]
        for key in needs:
            if key not in src:
                raise ValueError(f"{where}.{key}: a {src['kind']} source needs {', '.join(needs)}")
        if src["kind"] == "frontier" and src["hardware"] not in hardware:
            raise ValueError(f"{where}.hardware: unknown target {src['hardware']!r} {known('targets', hardware)}")
        if src["kind"] == "baselines":
            for n in src["n_layer"]:
                try:
                    ArchSpec.from_dict({**src["base"], "n_layer": n})
                except ValueError as e:
                    raise ValueError(f"{where}.base: {e}") from None


def load_config(
    path: str | Path = CONFIG, overrides: Mapping[str, Any] | None = None, root: str | Path = "."
) -> dict[str, Any]:
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
    profile settings (minus the cache location and the number of shards)."""
    target = {k: v for k, v in hardware_target(config, hardware).items() if k not in ROUTING_KEYS}
    prof = {k: v for k, v in config["profile"].items() if k not in ("cache", "shards")}
    return {"hardware": target, "profile": prof}


def validate_sections(path: str | Path, names: Sequence[str], root: str | Path = ".") -> dict[str, Any]:
    """Only the sections ``names`` of the config file ``path``, validated against their part of the
    schema with their defaults filled: a device that measures or a training run outside the
    workflow reads nothing else, so nothing else in the file can stop it. ValueError naming the
    key and the file."""
    if not Path(path).exists():
        raise FileNotFoundError(f"--config: no file {str(path)!r}")
    config = yamlfile.load(Path(path)) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a mapping of config sections")
    schema = load_schema(root)
    sections = {k: config[k] for k in names if k in config}  # the absent ones take their defaults
    wanted = {
        **schema,
        "properties": {k: schema["properties"][k] for k in names},
        "required": [],
        "additionalProperties": True,
    }
    coerce(sections, wanted)
    validator = _with_defaults(jsonschema.validators.validator_for(schema))(wanted)
    errors = sorted(validator.iter_errors(sections), key=lambda e: list(e.absolute_path))
    if errors:
        path_, message = _describe(errors[0])
        raise ValueError(f"{'.'.join(map(str, path_)) or 'config'}: {message}{_located([path], path_)}")
    return sections


def load_measurement_settings(path: str | Path, hardware: str, root: str | Path = ".") -> dict[str, Any]:
    """``measurement_settings`` of target ``hardware`` from a config file, validating only the
    sections they come from (``hardware``, ``profile``; ``validate_sections``)."""
    sections = validate_sections(path, ("hardware", "profile"), root)
    for name, target in sections["hardware"].items():
        target_source(name, target)
    return measurement_settings(sections, hardware)
