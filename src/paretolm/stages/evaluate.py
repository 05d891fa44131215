"""Stage ``evaluate``: perplexities, zero-shot accuracy, latency and memory of one trained model,
with the validation loss its training scored at each budget; ``collect`` gathers every run's row
into one table."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from paretolm.config import measurement_settings
from paretolm.core import lazy
from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import provenance, write_table
from paretolm.data import resolve_path, train_data
from paretolm.hardware.sources import source_for
from paretolm.stages.train import data_part, selected_row
from paretolm.training.recipe import TrainConfig

# the stage's heavy part, imported when it runs: building the job graph reads every stage module
torch = lazy.module("torch")
trainer = lazy.module("paretolm.training.trainer")
evaluation = lazy.module("paretolm.validation.evaluation")

NAME = "evaluate"
WILDCARDS = ("run",)


def config_part(config: Mapping[str, Any], **wildcards: str) -> dict[str, Any]:
    """Training data, the evaluate section and the target latency and memory are measured on
    (the same for every architecture)."""
    hw = config["validation"]["hardware"]
    hardware = None
    if hw:
        settings = measurement_settings(config, hw)
        hardware = {"name": hw, "target": settings["hardware"], "profile": settings["profile"]}
    return {**data_part(config), "evaluate": config["evaluate"], "hardware": hardware}


def run(
    part: Mapping[str, Any],
    *,
    run: str,
    archs: str | os.PathLike,
    model_dir: str | os.PathLike,
    train_summary: str | os.PathLike,
    out: str | os.PathLike,
    budgets: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Evaluate the model of run ``run`` trained into ``model_dir`` -> ``out`` (one row). Latency
    and memory come from ``validation.hardware`` as the search's do (its source: this machine,
    a device's imported files or a remote device), through the measurement cache ``cache_dir``.
    ``budgets`` (the run's ``budgets.parquet``) adds ``budget<j>_{fraction,tokens,valid_loss}``
    for each budget j."""
    selected = selected_row(archs, run)
    spec = ArchSpec.from_json(selected["spec"])
    torch.set_num_threads(int(part["evaluate"]["threads"]))
    dc = train_data(part)
    tokenizer = dc.load_tokenizer()
    model = trainer.load_model(model_dir)
    ev = dict(part["evaluate"])
    ev["seq_len"] = ev["seq_len"] or TrainConfig.from_section(part["train"]).seq_len
    if ev["zero_shot"]:
        ev["zero_shot"] = dict(ev["zero_shot"], data_dir=str(resolve_path(ev["zero_shot"]["data_dir"])))
    seed = selected.get("train_seed")
    row: dict[str, Any] = {
        "arch_id": spec.arch_id,
        "run": run,
        "source": selected["source"],
        "train_seed": None if seed is None or pd.isna(seed) else int(seed),
        "spec": spec.to_json(),
    }
    row.update(evaluation.evaluate_model(model, tokenizer, dc, ev, part["datasets"], max_length=spec.max_seq_len))
    summary = json.loads(Path(train_summary).read_text())
    row.update(
        {
            "train_final_loss": summary["final_loss"],
            "train_seconds": summary["seconds"],
            "train_tokens_per_s": summary["tokens_per_s"],
            "train_budget_eval_seconds": summary.get("budget_eval_seconds", 0.0),
        }
    )
    if budgets is not None:
        for j, b in enumerate(pd.read_parquet(budgets).itertuples()):
            row.update(
                {
                    f"budget{j}_fraction": b.fraction,
                    f"budget{j}_tokens": int(b.tokens),
                    f"budget{j}_valid_loss": b.valid_loss,
                }
            )
    hw = part["hardware"]
    if hw:
        measure = source_for(hw["name"], {"hardware": hw["target"], "profile": hw["profile"]}, cache_dir)
        m = measure(spec)
        row.update({k: m[k] for k in ("latency_ms", "latency_iqr_ms", "peak_memory_mb")})
    df = pd.DataFrame([row])
    df["train_seed"] = df["train_seed"].astype("Int64")
    weights = sorted(str(p) for p in Path(model_dir).glob("*.safetensors"))
    inputs = [archs, *weights, train_summary, *([budgets] if budgets is not None else [])]
    write_table(df, out, provenance(NAME, part, inputs, wildcards={"run": run}))
    return df


def collect(inputs: Sequence[str | os.PathLike], out: str | os.PathLike) -> pd.DataFrame:
    """Every per-architecture row of ``inputs`` in one table -> ``out``."""
    df = pd.concat([pd.read_parquet(p) for p in inputs], ignore_index=True)
    write_table(df, out, provenance("eval_table", {}, list(inputs)))
    return df
