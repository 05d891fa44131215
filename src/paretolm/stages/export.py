"""Stage ``export``: the trained frontier of one hardware target as Hugging Face folders.

``results/export/{hardware}/`` gets one folder per frontier row that the validation half trained
(``validation.sources`` of kind ``frontier`` for that target), named ``<rank>-<arch_id>`` (rank by
``export.sort_by``, 0 first; the arch_id of the trained model), each with weights, tokenizer and a
model card taking latency and memory from the frontier row and the evaluation, perplexity and
zero-shot accuracy from the evaluation (``paretolm.export.folder``); ``index.json`` lists them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from paretolm.core import lazy
from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import atomic_dir, read_provenance, read_table
from paretolm.data import train_data
from paretolm.stages import config_part as part_of
from paretolm.stages.train import data_part
from paretolm.training.recipe import TrainConfig

# the stage's heavy part, imported when it runs: building the job graph reads every stage module
folder = lazy.module("paretolm.export.folder")

NAME = "export"
WILDCARDS = ("hardware",)


def config_part(config: Mapping[str, Any], **wildcards: str) -> dict[str, Any]:
    """The export section and the training data (its tokenizer goes into every folder, its
    vocabulary says which trained spec a frontier row became). The target must be a frontier
    source of the validation half, else nothing of its frontier was trained."""
    hardware = wildcards["hardware"]
    sources = [s for s in config["validation"]["sources"] if s.get("kind") == "frontier"]
    if not any(s.get("hardware") == hardware for s in sources):
        raise ValueError(
            f"validation.sources: no {{kind: frontier, hardware: {hardware}}} source, so the "
            f"{hardware} frontier is not trained and results/export/{hardware} has nothing to export"
        )
    return {**data_part(config), "export": config["export"]}


def runs(part: Mapping[str, Any], frontier: str | os.PathLike, archs: str | os.PathLike) -> list[dict[str, Any]]:
    """One record per frontier row, in rank order: ``rank``, ``frontier_arch_id`` and ``run``
    (the trained model's arch_id: the row's spec retargeted as ``training.select_archs`` does)."""
    table = read_table(archs)
    if table.empty:
        raise ValueError(f"{archs}: no selected architectures")
    vocab = ArchSpec.from_json(table["spec"].iloc[0]).vocab_size  # every selected spec has the tokenizer's
    seq_len = TrainConfig.from_section(part["train"]).seq_len
    trained = set(table["arch_id"])
    out = []
    for rank, row in folder.ranked(read_table(frontier), part["export"]["sort_by"]).iterrows():
        run = folder.trained_spec(ArchSpec.from_json(row["spec"]), vocab, seq_len).arch_id
        if run not in trained:
            raise ValueError(
                f"{frontier}: row {row['arch_id']} was not selected for training ({archs}); "
                "run the validation half on this frontier first"
            )
        out.append({"rank": int(rank), "frontier_arch_id": row["arch_id"], "run": run})
    return out


def inputs(config: Mapping[str, Any], hardware: str, archs: str) -> dict[str, Any]:
    """The rule's inputs, by name: the target's frontier, the selected table ``archs`` and the
    model and evaluation of every frontier row (``runs``)."""
    frontier = f"results/pareto_{hardware}.parquet"
    names = [r["run"] for r in runs(part_of(NAME, config, hardware=hardware), frontier, archs)]
    return {
        "frontier": frontier,
        "archs": archs,
        "models": [f"results/train/{n}/model" for n in names],
        "evals": [f"results/eval/{n}.parquet" for n in names],
    }


def folder_name(rank: int, arch_id: str) -> str:
    return f"{rank:02d}-{arch_id}"


def run(
    part: Mapping[str, Any],
    *,
    hardware: str,
    frontier: str | os.PathLike,
    archs: str | os.PathLike,
    models: Sequence[str | os.PathLike],
    evals: Sequence[str | os.PathLike],
    out: str | os.PathLike,
) -> list[dict[str, Any]]:
    """Export every trained frontier row of ``hardware`` -> ``out`` (replaced atomically).
    ``models`` / ``evals`` are the runs' ``results/train/<run>/model`` and ``results/eval/<run>.parquet``."""
    key, stock = part["export"]["sort_by"], bool(part["export"]["stock"])
    model_of = {Path(m).parent.name: Path(m) for m in models}
    eval_of = {Path(e).stem: Path(e) for e in evals}
    table = folder.ranked(read_table(frontier), key)
    frontier_prov = read_provenance(frontier)
    tokenizer = train_data(part).load_tokenizer()
    index = []
    with atomic_dir(out) as tmp:
        for item in runs(part, frontier, archs):
            name = folder_name(item["rank"], item["run"])
            evaluation = eval_prov = None
            if item["run"] in eval_of:
                evaluation = folder.match_row(read_table(eval_of[item["run"]]), _spec_of(model_of[item["run"]]))
                eval_prov = read_provenance(eval_of[item["run"]])
            summary = folder.export_model(
                model_of[item["run"]],
                tmp / name,
                tokenizer=tokenizer,
                frontier=table,
                frontier_prov=frontier_prov,
                evaluation=evaluation,
                eval_prov=eval_prov,
                rank=item["rank"],
                rank_key=key,
                stock=stock,
            )
            row = table.iloc[item["rank"]]
            index.append(
                {
                    **item,
                    "folder": name,
                    "model_class": summary["model_class"],
                    "stock": summary["stock"],
                    key: _plain(row.get(key)),
                    **{
                        k: _plain(evaluation.get(k))
                        for k in ("valid_ppl", "test_ppl", "latency_ms", "peak_memory_mb")
                        if evaluation is not None and k in evaluation
                    },
                }
            )
        (tmp / "index.json").write_text(
            json.dumps({"hardware": hardware, "sort_by": key, "models": index}, indent=1) + "\n"
        )
    return index


def _spec_of(model_dir: Path) -> Any:
    return ArchSpec.from_json((model_dir / "spec.json").read_text())


def _plain(value: Any) -> Any:
    """A table cell as JSON (numpy scalars to Python)."""
    return value.item() if hasattr(value, "item") else value
