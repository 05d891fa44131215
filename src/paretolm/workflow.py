"""The workflow's configuration: loading, validation, per-stage parts, artifact paths.

The Snakefile and the command line share this module, so both see the same defaults and the same
checks. A stage's *config part* (``stage_config``) is the subset of the config that can change its
output; its hash goes into the artifact's provenance, and ``write_params_files`` keeps one small
JSON file per stage and wildcard that the rule takes as an input. The file is rewritten only when
its content changes, so editing a config value gives exactly the affected stages a newer input
(Snakemake reruns them and what depends on them) and leaves every other stage alone.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .arch import ArchSpec
from .artifacts import atomic_path, canonical_hash, provenance, read_table, write_table

SCHEMA = Path("config/schema.yaml")
CONFIG = Path("config/config.yaml")
PARAMS_DIR = "results/params"

# Keys of a hardware target that route jobs but cannot change a measurement.
_ROUTING_KEYS = ("resources", "slurm")
_HARDWARE_DEFAULTS: dict[str, Any] = {
    "dtype": "float32",
    "quantize": None,
    "threads": 1,
    "arch": None,
    "resources": {},
    "slurm": {"partition": None, "constraint": None, "gres": None},
}


def _schema_path(root: str | Path = ".") -> Path:
    path = Path(root) / SCHEMA
    if path.exists():
        return path
    # Installed package used outside a checkout: the schema shipped next to the repository root.
    return Path(__file__).resolve().parents[2] / SCHEMA


def validate_config(config: dict[str, Any], root: str | Path = ".") -> dict[str, Any]:
    """Validate ``config`` in place against the schema, fill defaults, and return it.

    Raises ``ValueError`` naming the offending key (for example ``search: additional properties
    are not allowed ('iteratoins' was unexpected)``)."""
    import jsonschema

    with open(_schema_path(root)) as fh:
        schema = yaml.safe_load(fh)
    validator_cls = jsonschema.validators.validator_for(schema)
    filling = _with_defaults(validator_cls)
    errors = sorted(filling(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "config"
        raise ValueError(f"{where}: {err.message}")
    for _name, target in config.get("hardware", {}).items():
        for key, value in _HARDWARE_DEFAULTS.items():
            target.setdefault(key, copy.deepcopy(value))
    check_consistency(config)
    return config


def _with_defaults(validator_cls: Any) -> Any:
    """A validator class that fills ``default`` values of missing properties while validating."""
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
    if search["parents"] > search["population"]:
        raise ValueError(
            f"search.parents: {search['parents']} is more than search.population={search['population']}"
        )
    obj = search["objectives"]
    n_obj = bool(obj.get("proxy")) + bool(obj.get("latency")) + bool(obj.get("memory"))
    if n_obj == 0:
        raise ValueError("search.objectives: switch on at least one objective")
    if obj.get("memory") and not prof["memory"]:
        raise ValueError("search.objectives.memory: needs profile.memory: true")
    proxy = obj.get("proxy")
    if proxy and proxy not in config["proxies"]["names"]:
        raise ValueError(
            f"search.objectives.proxy: {proxy!r} is not among proxies.names {config['proxies']['names']}"
        )
    col = search["bounds"]["params"].get("column")
    if col and col not in config["proxies"]["names"] and (
        search["bounds"]["params"].get("min") is not None or search["bounds"]["params"].get("max") is not None
    ):
        raise ValueError(f"search.bounds.params.column: {col!r} is not among proxies.names")
    for name in config.get("targets", []):
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


# -- per-stage config parts ---------------------------------------------------------------------
def space_file(config: Mapping[str, Any], space: str) -> Path:
    return Path(config["spaces_dir"]) / f"{space}.yaml"


def _space_content(config: Mapping[str, Any], space: str) -> dict[str, Any]:
    path = space_file(config, space)
    if not path.exists():
        raise ValueError(f"space: no search space file {str(path)!r} (spaces_dir={config['spaces_dir']!r})")
    with open(path) as fh:
        return yaml.safe_load(fh)


def hardware_target(config: Mapping[str, Any], hardware: str) -> dict[str, Any]:
    targets = config["hardware"]
    if hardware not in targets:
        raise ValueError(f"hardware: unknown target {hardware!r} (configured: {', '.join(sorted(targets))})")
    return dict(targets[hardware])


def measurement_settings(config: Mapping[str, Any], hardware: str) -> dict[str, Any]:
    """What a latency/memory number depends on: the target (minus job routing) and the
    profile settings (minus the cache location)."""
    target = {k: v for k, v in hardware_target(config, hardware).items() if k not in _ROUTING_KEYS}
    prof = {k: v for k, v in config["profile"].items() if k != "cache"}
    return {"hardware": target, "profile": prof}


def proxies_part(config: Mapping[str, Any]) -> dict[str, Any]:
    """The proxies section, its data block made self-contained: a dataset or tokenizer named
    there carries the ``datasets`` / ``tokenizers`` sections it is looked up in (so editing a
    dataset's definition reruns the proxies that read it)."""
    part = copy.deepcopy(dict(config["proxies"]))
    data = part.get("data")
    if data:
        data = dict(data)
        for section in ("datasets", "tokenizers"):
            data.setdefault(section, copy.deepcopy(config.get(section) or {}))
        part["data"] = data
    return part


def stage_config(config: Mapping[str, Any], stage: str, **wildcards: str) -> dict[str, Any]:
    """The config part that can change ``stage``'s output for the given wildcards."""
    if stage == "sample":
        space = wildcards["space"]
        return {"sample": {k: config["sample"][k] for k in ("n", "seed")},
                "space": space, "space_def": _space_content(config, space)}
    if stage == "proxies":
        return {"proxies": proxies_part(config)}
    if stage == "profile":
        return measurement_settings(config, wildcards["hardware"])
    if stage == "search":
        space = config["search"]["space"]
        return {
            "search": dict(config["search"]),
            "space_def": _space_content(config, space),
            "proxies": proxies_part(config),
            **measurement_settings(config, wildcards["hardware"]),
        }
    raise ValueError(f"stage: unknown stage {stage!r} (known: sample, proxies, profile, search)")


def params_path(stage: str, **wildcards: str) -> str:
    """Where the params file of a stage and its wildcards lives."""
    if stage in ("sample", "proxies"):
        return f"{PARAMS_DIR}/{stage}/{wildcards['space']}.json"
    if stage == "profile":
        return f"{PARAMS_DIR}/profile/{wildcards['hardware']}/{wildcards['space']}.json"
    if stage == "search":
        return f"{PARAMS_DIR}/search/{wildcards['hardware']}.json"
    raise ValueError(f"stage: unknown stage {stage!r}")


def spaces(config: Mapping[str, Any]) -> list[str]:
    """Every space a run can touch: the sampled ones and the searched one."""
    out = list(dict.fromkeys([*config["sample"]["spaces"], config["search"]["space"]]))
    return out


def params_jobs(config: Mapping[str, Any]) -> list[tuple[str, dict[str, str]]]:
    jobs: list[tuple[str, dict[str, str]]] = []
    for space in spaces(config):
        jobs.append(("sample", {"space": space}))
        jobs.append(("proxies", {"space": space}))
        for hw in config["hardware"]:
            jobs.append(("profile", {"hardware": hw, "space": space}))
    for hw in config["hardware"]:
        jobs.append(("search", {"hardware": hw}))
    return jobs


def write_params(path: str | Path, part: Mapping[str, Any]) -> bool:
    """Write ``part`` as canonical JSON to ``path`` unless the file already holds exactly that.
    Returns whether the file was (re)written; an unchanged file keeps its modification time."""
    text = json.dumps({"config_hash": canonical_hash(part), "config": part},
                      sort_keys=True, indent=1, default=str) + "\n"
    path = Path(path)
    if path.exists() and path.read_text() == text:
        return False
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return True


def write_params_files(config: Mapping[str, Any], root: str | Path = ".") -> dict[str, bool]:
    """Bring every stage's params file up to date; maps path -> whether it was rewritten."""
    out = {}
    for stage, wc in params_jobs(config):
        path = params_path(stage, **wc)
        out[path] = write_params(Path(root) / path, stage_config(config, stage, **wc))
    return out


def read_params(path: str | Path) -> dict[str, Any]:
    """The config part stored in a params file (what a stage script passes to provenance)."""
    with open(path) as fh:
        return json.load(fh)["config"]


def data_root() -> Path:
    """Where the shared offline data lives: ``$PARETOLM_DATA`` or ``../shared/data``."""
    return Path(os.environ.get("PARETOLM_DATA", "../shared/data"))


# -- stage entry points (the scripts under scripts/ call exactly one of these) ------------------
@contextmanager
def logged(path: str | Path | None) -> Iterator[logging.Logger]:
    """Send the ``paretolm`` logger, warnings and the process's stdout/stderr (file descriptors 1
    and 2, so output of C++ libraries such as the profiler lands there too) to ``path`` for the
    duration of a stage; an exception is logged with its traceback before it propagates."""
    log = logging.getLogger("paretolm")
    if path is None:
        yield log
        return
    import sys

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    stream = open(path, "w", buffering=1)  # noqa: SIM115  (closed in finally)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    old_level = log.level
    log.setLevel(logging.INFO)
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").addHandler(handler)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    os.dup2(stream.fileno(), 1)
    os.dup2(stream.fileno(), 2)
    try:
        yield log
    except BaseException:
        log.exception("stage failed")
        raise
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        log.removeHandler(handler)
        logging.getLogger("py.warnings").removeHandler(handler)
        log.setLevel(old_level)
        stream.close()


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], Mapping):
        return json.dumps(list(value), sort_keys=True)
    return list(value) if isinstance(value, tuple) else value


def samples_frame(specs: Sequence[ArchSpec], space: str) -> pd.DataFrame:
    """One row per spec: ``arch_id``, ``spec`` (canonical JSON), ``space`` and every gene as a
    column (per-layer genes as list columns; MeRino blocks as JSON)."""
    rows = []
    for spec in specs:
        row: dict[str, Any] = {"arch_id": spec.arch_id, "spec": spec.to_json(), "space": space}
        row.update({k: _cell(v) for k, v in spec.to_dict().items()})
        rows.append(row)
    return pd.DataFrame(rows)


def run_sample(space: str, space_file: str | Path, params: str | Path, out: str | Path) -> pd.DataFrame:
    """Stage 1: ``sample.n`` distinct architectures drawn from ``space`` with ``sample.seed``."""
    from .spaces import SearchSpace

    part = read_params(params)
    spec_space = SearchSpace.from_yaml(space_file)
    specs = spec_space.sample(int(part["sample"]["n"]), seed=int(part["sample"]["seed"]))
    df = samples_frame(specs, space)
    write_table(df, out, provenance("sample", part, [space_file, params], wildcards={"space": space}))
    logging.getLogger("paretolm").info("sampled %d architectures from %s", len(df), space)
    return df


def proxy_batch(part: Mapping[str, Any], names: Sequence[str]) -> Any:
    """The token batch for data-dependent proxies among ``names`` (None when none needs data)."""
    from . import proxies

    need = [n for n in names if proxies.get(n).needs_data]
    if not need:
        return None
    if not part.get("data"):
        raise ValueError(f"proxies.data: proxies {need} need a token batch; configure proxies.data")
    try:
        from .data import load_batch
    except ImportError as e:
        raise ValueError(f"proxies.data: proxies {need} need paretolm.data.load_batch ({e})") from None
    return load_batch(part["data"], int(part.get("batch_size", 8)), int(part["seq_len"]), int(part["seed"]))


def run_proxies(samples: str | Path, params: str | Path, out: str | Path) -> pd.DataFrame:
    """Stage 2: every configured proxy for every sampled architecture, with its cost in seconds."""
    from . import proxies

    part = read_params(params)["proxies"]
    names = list(part["names"])
    specs = [ArchSpec.from_json(s) for s in read_table(samples)["spec"]]
    batch = proxy_batch(part, names)
    if part.get("entropy"):
        from .proxies import entropy

        entropy.configure(**part["entropy"])
    df = proxies.score_table(specs, names, seq_len=int(part["seq_len"]), batch=batch, seed=int(part["seed"]))
    write_table(df, out, provenance("proxies", {"proxies": part}, [samples, params]))
    logging.getLogger("paretolm").info("scored %d architectures with %s", len(df), names)
    return df


# -- validation half: one params file per stage -----------------------------------------------
VALIDATION_PARAMS = "results/params/validation"
VALIDATION_STAGES = ("select", "train", "evaluate", "correlate")


def validation_stage_config(config: Mapping[str, Any], stage: str) -> dict[str, Any]:
    """The config part that can change a validation stage's outputs."""
    data = {k: config[k] for k in ("train", "datasets", "tokenizers")}
    if stage == "select":
        return {**data, "spaces_dir": config["spaces_dir"],
                "validation": {"sources": config["validation"]["sources"]}}
    if stage == "train":
        return data
    if stage == "evaluate":
        hw = config["validation"].get("hardware")
        hardware = None
        if hw:
            target = {k: v for k, v in hardware_target(config, hw).items() if k not in ("resources", "slurm")}
            hardware = {"name": hw, "target": target,
                        "profile": {k: v for k, v in config["profile"].items() if k != "cache"}}
        return {**data, "evaluate": config["evaluate"], "hardware": hardware}
    if stage == "correlate":
        val = {k: v for k, v in config["validation"].items() if k != "sources"}
        return {**data, "validation": val, "proxies": config["proxies"]}
    raise ValueError(f"stage: unknown validation stage {stage!r} (known: {VALIDATION_STAGES})")


def write_validation_params(config: Mapping[str, Any], root: str | Path = ".") -> dict[str, bool]:
    """Write each validation stage's params file, only where its content changed."""
    folder = Path(root) / VALIDATION_PARAMS
    return {
        stage: write_params(folder / f"{stage}.json", validation_stage_config(config, stage))
        for stage in VALIDATION_STAGES
    }
