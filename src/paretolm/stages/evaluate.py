"""Stage ``evaluate``: perplexities, zero-shot accuracy, latency and memory of one trained model;
``collect`` gathers every model's row into one table."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..artifacts import provenance, write_table
from ..config import measurement_settings
from .train import data_part

NAME = "evaluate"
WILDCARDS = ("arch_id",)


def config_part(config: Mapping[str, Any], **wildcards: str) -> dict[str, Any]:
    """Training data, the evaluate section and the target latency and memory are measured on
    (the same for every architecture)."""
    hw = config["validation"]["hardware"]
    hardware = None
    if hw:
        settings = measurement_settings(config, hw)
        hardware = {"name": hw, "target": settings["hardware"], "profile": settings["profile"]}
    return {**data_part(config), "evaluate": config["evaluate"], "hardware": hardware}


def run(part: Mapping[str, Any], *, arch_id: str, archs: str | os.PathLike, model_dir: str | os.PathLike,
        train_summary: str | os.PathLike, out: str | os.PathLike,
        cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Evaluate the model of ``arch_id`` trained into ``model_dir`` -> ``out`` (one row). Latency
    and memory come from ``validation.hardware`` as the search's do (its source: this machine,
    a device's imported files or a remote device), through the measurement cache ``cache_dir``."""
    import torch

    from ..arch import ArchSpec
    from ..data import data_config, resolve_path
    from ..evaluation import evaluate_model
    from ..training import _hyper, data_block, load_model, selected_row

    selected = selected_row(archs, arch_id)
    spec = ArchSpec.from_json(selected["spec"])
    torch.set_num_threads(int(part["evaluate"]["threads"]))
    dc = data_config(data_block(part))
    tokenizer = dc.load_tokenizer()
    model = load_model(model_dir)
    ev = dict(part["evaluate"])
    ev["seq_len"] = ev["seq_len"] or _hyper(part["train"]).seq_len
    if ev["zero_shot"]:
        ev["zero_shot"] = dict(ev["zero_shot"], data_dir=str(resolve_path(ev["zero_shot"]["data_dir"])))
    row: dict[str, Any] = {"arch_id": arch_id, "source": selected["source"], "spec": spec.to_json()}
    row.update(evaluate_model(model, tokenizer, dc, ev, part["datasets"], max_length=spec.max_seq_len))
    summary = json.loads(Path(train_summary).read_text())
    row.update({"train_final_loss": summary["final_loss"], "train_seconds": summary["seconds"],
                "train_tokens_per_s": summary["tokens_per_s"]})
    hw = part["hardware"]
    if hw:
        from ..measurement import source_for

        measure = source_for(hw["name"], {"hardware": hw["target"], "profile": hw["profile"]}, cache_dir)
        m = measure(spec)
        row.update({k: m[k] for k in ("latency_ms", "latency_iqr_ms", "peak_memory_mb")})
    df = pd.DataFrame([row])
    weights = sorted(str(p) for p in Path(model_dir).glob("*.safetensors"))
    write_table(df, out, provenance(NAME, part, [archs, *weights, train_summary],
                                    wildcards={"arch_id": arch_id}))
    return df


def collect(inputs: Sequence[str | os.PathLike], out: str | os.PathLike) -> pd.DataFrame:
    """Every per-architecture row of ``inputs`` in one table -> ``out``."""
    df = pd.concat([pd.read_parquet(p) for p in inputs], ignore_index=True)
    write_table(df, out, provenance("eval_table", {}, list(inputs)))
    return df
