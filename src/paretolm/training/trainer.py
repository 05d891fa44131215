"""Train an architecture from scratch, resumably: the train stage of the validation half.

``train(spec, data, cfg, out_dir)`` builds the model for ``spec``, trains it on random windows of
the train split (the batch of step t depends on (seed, t) only, see ``paretolm.data.train_batch``)
and writes, under ``out_dir``:

* ``model/``: the trained weights in safetensors, through the Hugging Face wrapper's
  ``save_pretrained`` (``paretolm.models.hf``) when it is available;
* ``train_log.parquet``: ``step``, ``loss``, ``lr``, ``tokens_per_s`` every ``log_every`` steps
  (atomic, with provenance);
* ``budgets.parquet``: the validation loss at each fraction of the run in ``budgets`` (``fraction``,
  ``step``, ``tokens``, ``valid_loss``, ``valid_ppl``, ``seconds``), scored on the same leading
  ``budget_tokens`` tokens of the validation split every time, so a proxy's rank correlation can be
  followed along the training budget (docs/validation.md);
* ``checkpoint/``: every ``checkpoint_every`` steps, the model weights (``model.safetensors``),
  the optimizer state and torch RNG state (``optimizer.pt``, ``torch.save`` of tensors and plain
  values only, read back with ``weights_only=True``) and the step, scheduler state and log so far
  (``state.json``). A checkpoint is written to a temporary folder and renamed into place, so a run
  killed at any moment (even by SIGKILL) finds either the previous or the new checkpoint whole and
  resumes from it, reaching the same final loss as a run never interrupted (CPU, same threads).

Hyperparameters come from ``TrainConfig`` (``paretolm.training.recipe``; config section ``train``) with named presets: LTS's
(``lts-wt103``, ``lts-lm1b``) and small CPU ones (``cpu-tiny``, ``cpu-small``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import atomic_dir, provenance, write_json, write_table
from paretolm.data import train_batch
from paretolm.training.recipe import OPTIMIZERS, PRESETS, SCHEDULES, TrainConfig, lr_factor

__all__ = ["OPTIMIZERS", "PRESETS", "SCHEDULES", "TrainConfig", "lr_factor", "make_optimizer", "train"]

_log = logging.getLogger(__name__)

def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """LAMB (``pytorch_optimizer``), Adam or AdamW; no weight decay on biases and norms."""
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    betas = (cfg.beta1, cfg.beta2)
    if cfg.optimizer == "lamb":
        from pytorch_optimizer import Lamb

        return Lamb(groups, lr=cfg.lr, betas=betas, eps=cfg.eps)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=betas, eps=cfg.eps)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas, eps=cfg.eps)


# -- models and their files -----------------------------------------------------------------------
def build_trainable(spec: ArchSpec, cfg: TrainConfig) -> torch.nn.Module:
    """The model to train: the Hugging Face wrapper, which is what ``save_pretrained`` and lm-eval
    need (causal backbones; a ``bert`` spec is refused with a message naming the backbone)."""
    from paretolm.models import hf

    return hf.from_spec(spec, dropout=cfg.dropout, attn_dropout=cfg.attn_dropout)


def _loss(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(input_ids=x, labels=x)
    return out.loss if hasattr(out, "loss") else out[0]


def save_model(model: torch.nn.Module, spec: ArchSpec, folder: str | os.PathLike) -> Path:
    """Write the weights (safetensors) and config to ``folder`` atomically (temp folder + rename)."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / "spec.json").write_text(spec.to_json() + "\n")
    return folder


def load_model(folder: str | os.PathLike) -> torch.nn.Module:
    """A model written by ``save_model`` (eval mode)."""
    from paretolm.models import hf

    return hf.ParetoLMForCausalLM.from_pretrained(Path(folder)).eval()


# -- checkpoints ----------------------------------------------------------------------------------
def _save_checkpoint(folder: Path, model, optimizer, scheduler, step: int, log: list[dict],
                     budgets: list[dict] | None = None) -> None:
    from safetensors.torch import save_model as st_save

    with atomic_dir(folder) as tmp:
        st_save(model, str(tmp / "model.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()},
                   tmp / "optimizer.pt")
        state = {"step": step, "scheduler": scheduler.state_dict(), "log": log, "budgets": budgets or []}
        (tmp / "state.json").write_text(json.dumps(state, default=float))


def _checkpoints(folder: Path) -> list[Path]:
    """The checkpoint and the one kept beside it while a new one is written, newest first."""
    return [c for c in (folder, folder.with_name(folder.name + ".old")) if c.is_dir()]


def _load_checkpoint(folder: Path, model, optimizer, scheduler) -> tuple[int, list[dict], list[dict]]:
    from safetensors.torch import load_model as st_load

    state = json.loads((folder / "state.json").read_text())
    st_load(model, str(folder / "model.safetensors"))
    blob = torch.load(folder / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(blob["optimizer"])
    torch.set_rng_state(blob["torch_rng"])
    scheduler.load_state_dict(state["scheduler"])
    return int(state["step"]), list(state["log"]), list(state.get("budgets", []))


def resume(folder: Path, fresh: Callable[[], tuple[Any, Any, Any]]) -> tuple[tuple[Any, Any, Any], int, list, list]:
    """``(model, optimizer, scheduler)`` from ``fresh()``, loaded from the newest checkpoint under
    ``folder`` that loads, with its step, log and budgets; a fresh start (step 0) when none does."""
    state = fresh()
    for found in _checkpoints(folder):
        try:
            return (state, *_load_checkpoint(found, *state))
        except Exception as e:  # a damaged checkpoint: try the previous one, else start again
            _log.warning("checkpoint %s cannot be loaded (%s: %s); trying an older one or starting over",
                         found, type(e).__name__, e)
            state = fresh()
    return state, 0, [], []


# -- budgets --------------------------------------------------------------------------------------
BUDGET_COLUMNS = ("fraction", "step", "tokens", "valid_loss", "valid_ppl", "seconds")


def _score_budget(model: torch.nn.Module, eval_ids: np.ndarray, cfg: TrainConfig, step: int,
                  fraction: float) -> dict[str, float]:
    """Validation loss (nats per token) of the model after ``step`` steps, on non-overlapping
    windows of ``cfg.seq_len`` over the same leading validation tokens every time."""
    from paretolm.validation.evaluation import score_stream

    t0 = time.perf_counter()
    nll, n = score_stream(model, eval_ids, cfg.seq_len, batch_size=cfg.batch_size)
    loss = nll / max(n, 1)
    return {"fraction": fraction, "step": step, "tokens": step * cfg.batch_size * cfg.seq_len,
            "valid_loss": loss, "valid_ppl": math.exp(loss), "seconds": time.perf_counter() - t0}


# -- the loop -------------------------------------------------------------------------------------
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
    ``final_loss`` (mean of the last ``log_every`` steps' losses), ``steps``, ``seconds`` (training
    only), ``budget_eval_seconds``, ``tokens_per_s`` and ``resumed_from`` (the checkpoint step, or 0).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if int(np.max(train_ids[: min(len(train_ids), 1 << 20)])) >= spec.vocab_size:
        raise ValueError(f"vocab_size: token ids reach beyond the spec's vocab_size={spec.vocab_size}")
    if cfg.seq_len > spec.max_seq_len:
        raise ValueError(f"train.seq_len: {cfg.seq_len} exceeds the spec's max_seq_len={spec.max_seq_len}")
    budget_at = cfg.budget_steps()
    if budget_at and eval_ids is None:
        raise ValueError("train.budgets: scoring the budgets needs the validation split's tokens (eval_ids)")
    if budget_at:
        eval_ids = np.asarray(eval_ids[: cfg.budget_tokens + 1])
    torch.set_num_threads(cfg.threads)
    ckpt_dir = out / "checkpoint"

    def fresh() -> tuple[Any, Any, Any]:
        torch.manual_seed(cfg.seed)
        model = build_trainable(spec, cfg)
        model.train()
        optimizer = make_optimizer(model, cfg)
        return model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))

    (model, optimizer, scheduler), start, log, budgets = resume(ckpt_dir, fresh)
    resumed_from = start
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc=f"train {spec.arch_id}", unit="step", mininterval=1.0)
    t_start = time.perf_counter()
    eval_seconds = 0.0
    window_t, window_tokens, window_losses = time.perf_counter(), 0, []
    for step in range(start, cfg.steps):
        x = train_batch(train_ids, step, cfg.batch_size, cfg.seq_len, cfg.seed)
        loss = _loss(model, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        window_tokens += x.numel()
        window_losses.append(float(loss.detach()))
        if not math.isfinite(window_losses[-1]):
            raise FloatingPointError(f"train: loss became {window_losses[-1]} at step {step} "
                                     f"({spec.arch_id})")
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            now = time.perf_counter()
            tps = window_tokens / max(now - window_t, 1e-9)
            log.append({"step": done, "loss": float(np.mean(window_losses)), "lr": lr, "tokens_per_s": tps})
            if bar is not None:
                bar.set_postfix(loss=f"{log[-1]['loss']:.3f}", tok_s=f"{tps:,.0f}")
            window_t, window_tokens, window_losses = now, 0, []
        if bar is not None:
            bar.update(1)
        if done in budget_at:
            t0 = time.perf_counter()
            budgets.append(_score_budget(model, eval_ids, cfg, done, budget_at[done]))
            spent = time.perf_counter() - t0
            eval_seconds += spent
            window_t += spent  # the throughput column counts training only
        if done % cfg.checkpoint_every == 0 and done < cfg.steps:
            _save_checkpoint(ckpt_dir, model, optimizer, scheduler, done, log, budgets)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t_start - eval_seconds
    model.eval()
    save_model(model, spec, out / "model")
    table = pd.DataFrame(log, columns=["step", "loss", "lr", "tokens_per_s"])
    meta = dict(prov or provenance("train", {"train": cfg.to_dict(), "spec": spec.to_json()}))
    write_table(table, out / "train_log.parquet", meta)
    write_table(pd.DataFrame(budgets, columns=list(BUDGET_COLUMNS)), out / "budgets.parquet", meta)
    summary = {
        "arch_id": spec.arch_id,
        "final_loss": float(table["loss"].iloc[-1]) if len(table) else float("nan"),
        "steps": cfg.steps,
        "seconds": seconds,
        "budget_eval_seconds": eval_seconds,
        "tokens_per_s": float(table["tokens_per_s"].median()) if len(table) else float("nan"),
        "resumed_from": resumed_from,
    }
    write_json(summary, out / "train_summary.json")
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    shutil.rmtree(ckpt_dir.with_name("checkpoint.old"), ignore_errors=True)
    return summary


# -- workflow stages ------------------------------------------------------------------------------
def data_block(part: Mapping[str, Any]) -> dict[str, Any]:
    """The ``paretolm.data`` block of a validation params part (train dataset and tokenizer)."""
    train_part = part["train"]
    return {"datasets": part["datasets"], "tokenizers": part["tokenizers"],
            "dataset": train_part["dataset"], "tokenizer": train_part["tokenizer"],
            "cache_dir": train_part.get("cache_dir", "results/cache/data")}


def _hyper(train_part: Mapping[str, Any]) -> TrainConfig:
    skip = {"dataset", "tokenizer", "cache_dir"}
    return TrainConfig.from_dict({k: v for k, v in train_part.items() if k not in skip})


def select_archs(part: Mapping[str, Any], inputs: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The architectures to train: one row per distinct trained spec with its ``source``.

    Sources (``validation.sources``): ``{kind: sample, space, n, seed}`` (a random sample, the
    ground truth), ``{kind: frontier, hardware}`` (``results/pareto_{hardware}.parquet``) and
    ``{kind: baselines, base: <spec>, n_layer: [...]}`` (LTS's hand-scaled backbones). Every spec
    gets the tokenizer's vocabulary (``vocab_size``) and at least the training sequence length, so
    its ``arch_id`` is that of the model actually trained; ``source_arch_id`` keeps the original.
    """
    from paretolm.data import data_config
    from paretolm.core.spaces import SearchSpace

    dc = data_config(data_block(part))
    vocab = len(dc.load_tokenizer())
    seq_len = _hyper(part["train"]).seq_len
    rows: list[dict[str, Any]] = []
    for i, src in enumerate(part["validation"]["sources"]):
        kind = src.get("kind")
        if kind == "sample":
            space = SearchSpace.from_yaml(Path(part["spaces_dir"]) / f"{src['space']}.yaml")
            specs = [(s, {}) for s in space.sample(int(src["n"]), int(src.get("seed", 0)))]
        elif kind == "frontier":
            hw = src["hardware"]
            path = (inputs or {}).get(f"frontier_{hw}") or f"results/pareto_{hw}.parquet"
            front = pd.read_parquet(path)
            specs = [(ArchSpec.from_json(r["spec"]),
                      {k: r[k] for k in ("latency_ms", "peak_memory_mb") if k in r})
                     for _, r in front.iterrows()]
        elif kind == "baselines":
            base = dict(src["base"])
            specs = []
            for n in src["n_layer"]:
                d = dict(base, n_layer=int(n))
                specs.append((ArchSpec.from_dict(d), {}))
        else:
            raise ValueError(f"validation.sources[{i}].kind: expected sample, frontier or baselines, "
                             f"got {kind!r}")
        for spec, extra in specs:
            trained = spec.plugin.retarget(spec, vocab, max(spec.max_seq_len, seq_len))
            rows.append({"arch_id": trained.arch_id, "spec": trained.to_json(), "source": kind,
                         "source_arch_id": spec.arch_id,
                         **{f"search_{k}": float(v) for k, v in extra.items()}})
    df = pd.DataFrame(rows)
    if df.empty:
        raise ValueError("validation.sources: no architectures selected")
    df = df.drop_duplicates("arch_id").reset_index(drop=True)
    df.insert(0, "run", df["arch_id"])
    df.insert(2, "train_seed", pd.array([None] * len(df), dtype="Int64"))
    return pd.concat([df, _repeats(df, part["validation"].get("repeats") or {})], ignore_index=True)


def _repeats(df: pd.DataFrame, repeats: Mapping[str, Any]) -> pd.DataFrame:
    """Runs of ``repeats.archs`` of the selected architectures with each seed of ``repeats.seeds``
    (run ``<arch_id>-seed<s>``): the seed-to-seed spread that correlate reports beside every SRC.
    The architectures are spread evenly over the selection ranked by total parameters, so the
    spread is measured on small and large models alike."""
    n = min(int(repeats.get("archs", 0)), len(df))
    if n == 0:
        return df.iloc[:0]
    from paretolm.core.counting import count

    size = [count(ArchSpec.from_json(s)).total_params for s in df["spec"]]
    order = np.argsort(size, kind="stable")
    picks = order[np.unique(np.round(np.linspace(0, len(df) - 1, n)).astype(int))]
    rows = []
    for seed in repeats.get("seeds", []):
        for i in picks:
            row = df.iloc[i].to_dict()
            rows.append({**row, "run": f"{row['arch_id']}-seed{int(seed)}", "train_seed": int(seed)})
    out = pd.DataFrame(rows, columns=df.columns)
    out["train_seed"] = out["train_seed"].astype("Int64")
    return out


def selected_row(archs: str | os.PathLike, run: str) -> pd.Series:
    """The row of training run ``run`` (an arch_id, or ``<arch_id>-seed<s>`` for a repeat) in the
    table the ``select_validation`` checkpoint wrote."""
    table = pd.read_parquet(archs)
    key = "run" if "run" in table.columns else "arch_id"
    rows = table[table[key] == run]
    if rows.empty:
        raise ValueError(f"run: {run} is not among the selected training runs in {archs}")
    return rows.iloc[0]

