"""Train an architecture from scratch, resumably: the train stage of the validation half.

``train(spec, data, cfg, out_dir)`` builds the model for ``spec``, trains it with the one training
loop (``paretolm.training.loop``: the batch of step t depends on (seed, t) only, see
``paretolm.data.train_batch``; checkpoints that resume exactly) and writes, under ``out_dir``:

* ``model/``: the trained weights in safetensors, through the Hugging Face wrapper's
  ``save_pretrained`` (``paretolm.models.hf``);
* ``train_log.parquet``: ``step``, ``loss``, ``lr``, ``tokens_per_s`` every ``log_every`` steps
  (atomic, with provenance);
* ``budgets.parquet``: the validation loss at each fraction of the run in ``budgets`` (``fraction``,
  ``step``, ``tokens``, ``valid_loss``, ``valid_ppl``, ``seconds``), scored on the same leading
  ``budget_tokens`` tokens of the validation split every time, so a proxy's rank correlation can be
  followed along the training budget (docs/validation.md);
* ``checkpoint/`` while it runs (``paretolm.training.loop.save_checkpoint``), removed at the end.

Hyperparameters come from ``TrainConfig`` (``paretolm.training.recipe``; config section ``train``)
with named presets: LTS's (``lts-wt103``, ``lts-lm1b``) and small CPU ones (``cpu-tiny``,
``cpu-small``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import atomic_dir, provenance, write_json, write_table
from paretolm.data import train_batch
from paretolm.models import hf
from paretolm.training.loop import Callback, Loop, Plain, Progress
from paretolm.training.recipe import TrainConfig
from paretolm.validation.evaluation import score_stream

BUDGET_COLUMNS = ("fraction", "step", "tokens", "valid_loss", "valid_ppl", "seconds")


# -- models and their files -----------------------------------------------------------------------
def build_trainable(spec: ArchSpec, cfg: TrainConfig) -> torch.nn.Module:
    """The model to train: the Hugging Face wrapper, which is what ``save_pretrained`` and lm-eval
    need (causal backbones; a ``bert`` spec is refused with a message naming the backbone)."""
    return hf.from_spec(spec, dropout=cfg.dropout, attn_dropout=cfg.attn_dropout)


def save_model(model: torch.nn.Module, spec: ArchSpec, folder: str | os.PathLike) -> Path:
    """Write the weights (safetensors) and config to ``folder`` atomically (temp folder + rename)."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / "spec.json").write_text(spec.to_json() + "\n")
    return folder


def load_model(folder: str | os.PathLike) -> torch.nn.Module:
    """A model written by ``save_model`` (eval mode)."""
    return hf.ParetoLMForCausalLM.from_pretrained(Path(folder)).eval()


# -- budgets --------------------------------------------------------------------------------------
class Budgets(Callback):
    """The validation loss (nats per token) after each budget's step, on non-overlapping windows of
    ``cfg.seq_len`` over the same leading validation tokens every time; kept in the checkpoint, so
    a resumed run reports the budgets it scored before."""

    def __init__(self, cfg: TrainConfig, eval_ids: np.ndarray | None):
        self.cfg, self.at = cfg, cfg.budget_steps()
        self.eval_ids = None if eval_ids is None else np.asarray(eval_ids[: cfg.budget_tokens + 1])
        self.rows: list[dict[str, float]] = []

    def on_step(self, loop: Loop, done: int, losses: dict[str, float]) -> float:
        if done not in self.at:
            return 0.0
        t0 = time.perf_counter()
        model = loop.strategy.model
        nll, n = score_stream(model, self.eval_ids, self.cfg.seq_len, batch_size=self.cfg.batch_size)
        model.train()
        loss = nll / max(n, 1)
        seconds = time.perf_counter() - t0
        self.rows.append(
            {
                "fraction": self.at[done],
                "step": done,
                "tokens": done * self.cfg.batch_size * self.cfg.seq_len,
                "valid_loss": loss,
                "valid_ppl": math.exp(loss),
                "seconds": seconds,
            }
        )
        return seconds

    def state(self) -> list[dict[str, float]]:
        return self.rows

    def load_state(self, state: Any) -> None:
        self.rows = list(state or [])


# -- the run --------------------------------------------------------------------------------------
def train(
    spec: ArchSpec,
    train_ids: np.ndarray,
    cfg: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    eval_ids: np.ndarray | None = None,
    progress: bool = True,
    prov: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``spec`` on the token array ``train_ids`` (resuming from ``out_dir/checkpoint``).

    With ``cfg.budgets``, the loss on the first ``cfg.budget_tokens`` of ``eval_ids`` (the
    validation split) is scored at each budget into ``budgets.parquet``. Returns a summary:
    ``final_loss`` (the last log row's mean loss), ``steps``, ``seconds`` (training only),
    ``budget_eval_seconds``, ``tokens_per_s`` and ``resumed_from`` (the checkpoint step, or 0).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if int(np.max(train_ids[: min(len(train_ids), 1 << 20)])) >= spec.vocab_size:
        raise ValueError(f"vocab_size: token ids reach beyond the spec's vocab_size={spec.vocab_size}")
    if cfg.seq_len > spec.max_seq_len:
        raise ValueError(f"train.seq_len: {cfg.seq_len} exceeds the spec's max_seq_len={spec.max_seq_len}")
    if cfg.budgets and eval_ids is None:
        raise ValueError("train.budgets: scoring the budgets needs the validation split's tokens (eval_ids)")
    budgets = Budgets(cfg, eval_ids)
    callbacks: list[Callback] = [budgets]
    if progress:
        callbacks.append(Progress(f"train {spec.arch_id}"))
    loop = Loop(
        cfg,
        build=lambda: Plain(build_trainable(spec, cfg)),
        batch=lambda step: train_batch(train_ids, step, cfg.batch_size, cfg.seq_len, cfg.seed),
        checkpoint=out / "checkpoint",
        callbacks=callbacks,
        name=f"train ({spec.arch_id})",
    )
    result = loop.run()
    save_model(loop.strategy.model, spec, out / "model")
    table = pd.DataFrame(result["log"], columns=["step", "loss", "lr", "tokens_per_s"])
    meta = dict(prov or provenance("train", {"train": cfg.to_dict(), "spec": spec.to_json()}))
    write_table(table, out / "train_log.parquet", meta)
    write_table(pd.DataFrame(budgets.rows, columns=list(BUDGET_COLUMNS)), out / "budgets.parquet", meta)
    summary = {
        "arch_id": spec.arch_id,
        "final_loss": float(table["loss"].iloc[-1]) if len(table) else float("nan"),
        "steps": cfg.steps,
        "seconds": result["seconds"],
        "budget_eval_seconds": float(sum(r["seconds"] for r in budgets.rows)),
        "tokens_per_s": float(table["tokens_per_s"].median()) if len(table) else float("nan"),
        "resumed_from": result["resumed_from"],
    }
    write_json(summary, out / "train_summary.json")
    loop.clear_checkpoints()
    return summary


__all__ = ["BUDGET_COLUMNS", "Budgets", "build_trainable", "load_model", "save_model", "train"]
