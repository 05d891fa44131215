"""``paretolm train``: train one architecture outside the workflow, resumably.

    paretolm train --spec '{"backbone": "gpt2", ...}' --out runs/tiny [--steps 100 --lr 3e-3 ...]
    paretolm train --frontier results/pareto_cpu.parquet --rank 0 --out runs/fastest

The recipe is the config's ``train`` section (``--config``, default ``config/config.yaml``; its
``preset`` and fields), overridden by ``--preset`` and one flag per ``TrainConfig`` field; the data
are the config's ``train.dataset`` / ``train.tokenizer`` (``--dataset`` / ``--tokenizer``). The
spec is retargeted to the tokenizer's vocabulary and at least the training sequence length, as
the workflow's ``select`` stage does. ``--rank K`` is row K (0-based) of the frontier sorted by
``--sort-by`` (default ``latency_ms``, fastest first). ``DIR`` gets what the workflow's train
stage writes (``model/``, ``train_log.parquet``, ``train_summary.json``; ``checkpoint/`` while it
runs, so a killed run started again resumes) plus ``tokenizer/`` and ``run.json`` (spec, recipe,
data and their hash: a different run is refused rather than resumed from the wrong checkpoint).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from paretolm.commands import COMMANDS

DEFAULT_CONFIG = "config/config.yaml"
_DATA_KEYS = ("dataset", "tokenizer", "cache_dir")


def _config_path(given: str | None) -> Path:
    """``--config``, else ``config/config.yaml`` of the working directory, else of the checkout."""
    if given:
        return Path(given)
    here = Path(DEFAULT_CONFIG)
    return here if here.exists() else Path(__file__).resolve().parents[3] / DEFAULT_CONFIG


def load_config(path: Path) -> dict[str, Any]:
    """The ``train``, ``datasets`` and ``tokenizers`` sections of a config file, validated against
    the workflow's schema with its defaults filled; the other sections (search spaces, targets)
    are not needed to train, so nothing in them can stop a run."""
    from paretolm.config import validate_sections

    return validate_sections(path, ("train", "datasets", "tokenizers"))


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "null") else float(text)


def _fractions(text: str) -> tuple[float, ...]:
    """``--budgets 0.25,0.5,1`` (empty: none)."""
    return tuple(float(t) for t in text.split(",") if t.strip())


def recipe(config: dict[str, Any], args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """(``TrainConfig``, data block) from the config's train section and the command's flags."""
    from paretolm.data import train_data_block
    from paretolm.stages.train import section
    from paretolm.training.recipe import TrainConfig

    train = section(config)
    hyper = {k: v for k, v in train.items() if k not in _DATA_KEYS}
    if args.preset:
        hyper["preset"] = args.preset
    for f in fields(TrainConfig):
        if f.name in vars(args):  # given on the command line (the flags default to absent)
            hyper[f.name] = getattr(args, f.name)
    cfg = TrainConfig.from_dict(hyper)
    data_train = {
        **train,
        "dataset": args.dataset or train.get("dataset"),
        "tokenizer": args.tokenizer or train.get("tokenizer"),
    }
    for key in ("dataset", "tokenizer"):
        if not data_train[key]:
            raise ValueError(f"--{key}: not set and the config's train.{key} is null; name one of its {key}s")
    block = train_data_block({"train": data_train, "datasets": config["datasets"], "tokenizers": config["tokenizers"]})
    return cfg, block


def chosen_spec(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The spec to train and where it came from (for the run record and the model card)."""
    from paretolm.core.arch import ArchSpec
    from paretolm.core.artifacts import read_provenance, read_table
    from paretolm.export.folder import frontier_row

    if (args.spec is None) == (args.frontier is None):
        raise ValueError("--spec or --frontier: give exactly one")
    if args.spec is not None:
        text = args.spec
        if not text.lstrip().startswith("{") and Path(text).is_file():
            text = Path(text).read_text()
        return ArchSpec.from_json(text), {"kind": "spec"}
    if args.rank is None:
        raise ValueError("--rank: needed with --frontier (0 is the first row sorted by --sort-by)")
    from paretolm.export.folder import RANK_KEY

    args.sort_by = args.sort_by or RANK_KEY
    row = frontier_row(read_table(args.frontier), args.rank, args.sort_by)
    prov = read_provenance(args.frontier) or {}
    return ArchSpec.from_json(row["spec"]), {
        "kind": "frontier",
        "frontier": str(args.frontier),
        "rank": args.rank,
        "sort_by": args.sort_by,
        "arch_id": row["arch_id"],
        "frontier_config_hash": prov.get("config_hash"),
    }


def _save_tokenizer(tokenizer: Any, folder: Path, max_length: int) -> None:
    """The tokenizer beside the model, written atomically (a killed run never leaves half of one)."""
    from paretolm.core.artifacts import atomic_dir
    from paretolm.export.folder import save_tokenizer

    with atomic_dir(folder) as tmp:
        save_tokenizer(tokenizer, tmp, max_length)


def cmd_train(args: argparse.Namespace) -> int:
    from paretolm.core.arch import ArchSpec
    from paretolm.core.artifacts import canonical_hash, provenance, write_json
    from paretolm.data import data_config
    from paretolm.export.folder import trained_spec
    from paretolm.training.trainer import train

    config = load_config(_config_path(args.config))
    cfg, block = recipe(config, args)
    source_spec, source = chosen_spec(args)
    dc = data_config(block)
    tokenizer = dc.load_tokenizer()
    spec = trained_spec(source_spec, len(tokenizer), cfg.seq_len)
    part = {
        "train": {**cfg.to_dict(), "dataset": dc.dataset.name, "tokenizer": dc.tokenizer.name},
        "datasets": {dc.dataset.name: dc.dataset.to_dict()},
        "tokenizers": {dc.tokenizer.name: dc.tokenizer.to_dict()},
    }
    out = Path(args.out)
    record = {
        "spec": spec.to_json(),
        "part": part,
        "hash": canonical_hash([spec.to_json(), part]),
        "source": source,
        "source_arch_id": source_spec.arch_id,
    }
    run_file = out / "run.json"
    if run_file.is_file():
        before = json.loads(run_file.read_text())
        if before.get("hash") != record["hash"] and (out / "checkpoint").exists():
            raise ValueError(
                f"--out: {out} holds an unfinished run of another spec or recipe "
                f"({ArchSpec.from_json(before['spec']).arch_id}); use another --out or remove it"
            )
    out.mkdir(parents=True, exist_ok=True)
    write_json(record, run_file)
    _save_tokenizer(tokenizer, out / "tokenizer", spec.max_seq_len)
    ids = dc.split("train", tokenizer=tokenizer).ids
    eval_ids = dc.split("validation", tokenizer=tokenizer).ids if cfg.budgets else None
    inputs = [args.frontier] if args.frontier else []
    prov = provenance("train", part, inputs, spec=spec.to_json(), source=source)
    summary = train(spec, ids, cfg, out, eval_ids=eval_ids, progress=not args.no_progress, prov=prov)
    print(json.dumps({**summary, "out": str(out), "model": str(out / "model")}))
    return 0


@COMMANDS.register("train")
def register(subparsers: argparse._SubParsersAction) -> None:
    from paretolm.training.recipe import PRESETS, TrainConfig

    p = subparsers.add_parser(
        "train",
        help="train one architecture (a spec or a frontier row), resumably",
        description=__doc__.split("\n\n")[0].replace("``", ""),
    )
    what = p.add_argument_group("what to train")
    what.add_argument("--spec", help="the spec as JSON (or a file holding it)")
    what.add_argument("--frontier", help="a frontier table (results/pareto_<hardware>.parquet)")
    what.add_argument("--rank", type=int, help="row of the frontier sorted by --sort-by (0-based)")
    what.add_argument("--sort-by", default=None, help="frontier column to rank by (default: latency_ms)")
    p.add_argument("--out", required=True, help="run folder (resumes from OUT/checkpoint)")
    p.add_argument("--config", help=f"config whose train section is the recipe (default: {DEFAULT_CONFIG})")
    p.add_argument("--preset", choices=sorted(PRESETS), help="start the recipe from this preset")
    p.add_argument("--dataset", help="dataset named in the config's datasets (default: train.dataset)")
    p.add_argument("--tokenizer", help="tokenizer named in the config's tokenizers (default: train.tokenizer)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    hyper = p.add_argument_group("recipe overrides (TrainConfig fields)")
    for f in fields(TrainConfig):
        default = f.default
        kind: Any = {"grad_clip": _optional_float, "budgets": _fractions}.get(f.name, type(default))
        hyper.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=kind,
            default=argparse.SUPPRESS,
            metavar=f.name.upper(),
            help=f"(preset's or config's; built-in default {default})",
        )
    p.set_defaults(func=cmd_train)
