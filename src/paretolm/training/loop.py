"""The one training loop: a strategy's losses, the optimizer and schedule of a ``TrainConfig``,
checkpoints that resume exactly, and callbacks. The trainer (one model, ``Plain``) and the supernet
(sub-networks of shared weights, ``paretolm.supernet``'s sandwich strategy) both run it.

Every step: the batch of step t (it depends on the seed and t only), ``strategy.step(batch, t)``
(which runs the forward and backward passes and returns the step's losses by name), gradient
clipping, one optimizer and one scheduler step. Every ``log_every`` steps a log row holds the mean
of each loss over the window, the learning rate, the training throughput and the training seconds
so far. Every ``checkpoint_every`` steps ``save_checkpoint`` writes the model, the optimizer and
RNG state, the scheduler, the log and each callback's state into one folder, atomically (a
previous checkpoint is kept beside it while a new one is written), so a run killed at any moment
resumes from the newest whole checkpoint and reaches the weights of a run never interrupted (CPU,
same threads). Callbacks see every step and may spend time outside the throughput (``on_step``
returns the seconds it spent), and keep state across a resume (``state`` / ``load_state``).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.torch import load_model as load_weights
from safetensors.torch import save_model as save_weights
from tqdm import tqdm

from paretolm.core.artifacts import atomic_dir
from paretolm.training.recipe import TrainConfig, lr_factor

log = logging.getLogger(__name__)


class Strategy(Protocol):
    """What a step trains: ``model`` holds every trained parameter (the optimizer's and the
    checkpoint's); ``step`` runs the forward and backward passes of one batch and returns the
    step's losses by name (the first is the run's loss)."""

    model: torch.nn.Module

    def step(self, batch: torch.Tensor, step: int) -> dict[str, float]: ...


class Plain:
    """One model, its own loss on the batch (``model(input_ids=x, labels=x).loss``)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        out = self.model(input_ids=batch, labels=batch)
        loss = out.loss if hasattr(out, "loss") else out[0]
        loss.backward()
        return {"loss": float(loss.detach())}


class Callback:
    """Hooks of a run; the base does nothing."""

    def on_start(self, loop: Loop, start: int) -> None:
        """Before the first step (``start`` > 0 after a resume)."""

    def on_step(self, loop: Loop, done: int, losses: dict[str, float]) -> float:
        """After ``done`` optimizer steps; returns seconds spent here that are not training."""
        return 0.0

    def on_end(self, loop: Loop) -> None:
        """After the last step."""

    def state(self) -> Any:
        """JSON-able state a checkpoint keeps (None: nothing)."""
        return None

    def load_state(self, state: Any) -> None:
        """The state ``state()`` returned, from the checkpoint a run resumes from."""


class Progress(Callback):
    """A tqdm bar with the last window's losses and throughput."""

    def __init__(self, desc: str):
        self.desc, self.bar = desc, None

    def on_start(self, loop: Loop, start: int) -> None:
        self.bar = tqdm(total=loop.cfg.steps, initial=start, desc=self.desc, unit="step", mininterval=1.0)

    def on_step(self, loop: Loop, done: int, losses: dict[str, float]) -> float:
        self.bar.update(1)
        if loop.log and loop.log[-1]["step"] == done:
            row = loop.log[-1]
            self.bar.set_postfix({k: f"{row[k]:.3f}" for k in losses} | {"tok_s": f"{row['tokens_per_s']:,.0f}"})
        return 0.0

    def on_end(self, loop: Loop) -> None:
        self.bar.close()


@dataclass
class Loop:
    """A resumable run of ``strategy`` (made by ``build``) for ``cfg.steps`` steps on
    ``batch(step)``, checkpointing into ``checkpoint``; ``run()`` returns its summary."""

    cfg: TrainConfig
    build: Callable[[], Strategy]
    batch: Callable[[int], torch.Tensor]
    checkpoint: Path
    callbacks: Sequence[Callback] = ()
    name: str = "train"  # named in a non-finite loss's error
    log: list[dict[str, Any]] = field(default_factory=list)
    strategy: Strategy | None = None

    def _fresh(self) -> tuple[Strategy, torch.optim.Optimizer, Any]:
        torch.manual_seed(self.cfg.seed)
        strategy = self.build()
        strategy.model.train()
        optimizer = make_optimizer(strategy.model, self.cfg)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, self.cfg))
        return strategy, optimizer, scheduler

    def _resume(self) -> tuple[Strategy, torch.optim.Optimizer, Any, int]:
        """The fresh state loaded from the newest checkpoint that loads (step 0 when none does)."""
        state = self._fresh()
        for found in checkpoints(self.checkpoint):
            try:
                saved = load_checkpoint(found, state[0].model, state[1], state[2])
            except Exception as e:  # a damaged checkpoint: try the previous one, else start again
                log.warning(
                    "checkpoint %s cannot be loaded (%s: %s); trying an older one or starting over",
                    found,
                    type(e).__name__,
                    e,
                )
                state = self._fresh()
                continue
            self.log = list(saved["log"])
            for cb, cb_state in zip(
                self.callbacks, saved.get("callbacks") or [None] * len(self.callbacks), strict=False
            ):
                cb.load_state(cb_state)
            return (*state, int(saved["step"]))
        return (*state, 0)

    def run(self) -> dict[str, Any]:
        """Train from the newest checkpoint (or from scratch) to ``cfg.steps``; returns ``steps``,
        ``seconds`` (training only, across resumes), ``callback_seconds`` (this session's time in
        callbacks), ``resumed_from`` and the log."""
        cfg = self.cfg
        torch.set_num_threads(cfg.threads)
        strategy, optimizer, scheduler, start = self._resume()
        self.strategy = strategy
        params = [p for p in strategy.model.parameters() if p.requires_grad]
        offset = self.log[-1]["seconds"] if self.log else 0.0  # training time before a resume
        for cb in self.callbacks:
            cb.on_start(self, start)
        t0 = time.perf_counter()
        spent = 0.0  # seconds in callbacks, left out of the training time
        window_t, window_tokens, window = t0, 0, []
        for step in range(start, cfg.steps):
            x = self.batch(step)
            optimizer.zero_grad(set_to_none=True)
            losses = strategy.step(x, step)
            if not all(math.isfinite(v) for v in losses.values()):
                raise FloatingPointError(f"{self.name}: a loss became {losses} at step {step}")
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            window_tokens += x.numel()
            window.append(losses)
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                now = time.perf_counter()
                row = {
                    "step": done,
                    **{k: float(np.mean([w[k] for w in window])) for k in window[0]},
                    "lr": lr,
                    "tokens_per_s": window_tokens / max(now - window_t, 1e-9),
                    "seconds": offset + now - t0 - spent,
                }
                self.log.append(row)
                window_t, window_tokens, window = now, 0, []
            for cb in self.callbacks:
                extra = cb.on_step(self, done, losses)
                spent += extra
                window_t += extra  # the throughput counts training only
            if done % cfg.checkpoint_every == 0 and done < cfg.steps:
                save_checkpoint(
                    self.checkpoint,
                    strategy.model,
                    optimizer,
                    scheduler,
                    done,
                    self.log,
                    [cb.state() for cb in self.callbacks],
                )
        for cb in self.callbacks:
            cb.on_end(self)
        strategy.model.eval()
        seconds = self.log[-1]["seconds"] if self.log else 0.0
        return {
            "steps": cfg.steps,
            "seconds": seconds,
            "callback_seconds": spent,
            "resumed_from": start,
            "log": self.log,
        }

    def clear_checkpoints(self) -> None:
        """Remove the checkpoints once the run's outputs are written."""
        for c in checkpoints(self.checkpoint):
            shutil.rmtree(c, ignore_errors=True)


# -- optimizer and checkpoints ----------------------------------------------------------------------
def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """LAMB (``pytorch_optimizer``), Adam or AdamW; no weight decay on biases and norms."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    betas = (cfg.beta1, cfg.beta2)
    if cfg.optimizer == "lamb":
        from pytorch_optimizer import Lamb  # only this optimizer needs the package

        return Lamb(groups, lr=cfg.lr, betas=betas, eps=cfg.eps)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=betas, eps=cfg.eps)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas, eps=cfg.eps)


def save_checkpoint(
    folder: Path,
    model: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    step: int,
    log_rows: list[dict],
    callbacks: list[Any] | None = None,
) -> None:
    """Weights (safetensors), optimizer and torch RNG state (``torch.save`` of tensors and plain
    values, read back with ``weights_only=True``), and the step, scheduler, log and callbacks'
    states (JSON), into ``folder`` atomically."""
    with atomic_dir(folder) as tmp:
        save_weights(model, str(tmp / "model.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}, tmp / "optimizer.pt")
        state = {"step": step, "scheduler": scheduler.state_dict(), "log": log_rows, "callbacks": callbacks or []}
        (tmp / "state.json").write_text(json.dumps(state, default=float))


def checkpoints(folder: Path) -> list[Path]:
    """The checkpoint and the one kept beside it while a new one is written, newest first."""
    return [c for c in (folder, folder.with_name(folder.name + ".old")) if c.is_dir()]


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """Load a checkpoint into ``model``, ``optimizer`` and ``scheduler``; returns its state record."""
    state = json.loads((folder / "state.json").read_text())
    load_weights(model, str(folder / "model.safetensors"))
    blob = torch.load(folder / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(blob["optimizer"])
    torch.set_rng_state(blob["torch_rng"])
    scheduler.load_state_dict(state["scheduler"])
    return state


__all__ = [
    "Callback",
    "Loop",
    "Plain",
    "Progress",
    "Strategy",
    "checkpoints",
    "load_checkpoint",
    "make_optimizer",
    "save_checkpoint",
]
