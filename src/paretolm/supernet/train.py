"""Training the supernet of a space with the sandwich rule (HAT, AutoTinyBERT, BigNAS), on the one
training loop (``paretolm.training.loop``).

Every step: the largest, the smallest and ``random_subnets`` random candidates of the space (drawn
with a generator seeded by the seed and the step alone, so a resumed run draws the same ones) on
one batch, their gradients summed into the shared weights, one AdamW step (warm-up, cosine decay to
0.1 x lr, gradient clipping at 1). With ``distill`` the others learn the largest one's soft labels
(KL) instead of the data. ``train_supernet`` writes ``supernet.safetensors`` (the store),
``supernet.json`` (the space, the store's layout, the log) and ``valid_ids.safetensors`` (the
validation windows every candidate is scored on) into one folder, atomically.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file, save_model

from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import atomic_dir, provenance, write_json
from paretolm.core.spaces import SearchSpace
from paretolm.data import train_batch
from paretolm.proxies.supernet_loss import META, SupernetSettings
from paretolm.supernet.weights import Supernet, extreme
from paretolm.training.loop import Loop, Progress
from paretolm.training.recipe import TrainConfig

WEIGHTS, WINDOWS = "supernet.safetensors", "valid_ids.safetensors"


def train_config(settings: SupernetSettings) -> TrainConfig:
    """The loop's recipe for the supernet: AdamW, warm-up then cosine decay to 0.1 x lr, gradient
    clipping at 1."""
    return TrainConfig(
        optimizer="adamw",
        lr=float(settings.lr),
        steps=settings.steps,
        batch_size=settings.batch_size,
        seq_len=settings.seq_len,
        warmup_steps=settings.warmup_steps,
        schedule="cosine",
        min_lr_ratio=0.1,
        grad_clip=1.0,
        seed=settings.seed,
        checkpoint_every=settings.checkpoint_every,
        log_every=min(10, settings.steps),
        threads=settings.threads,
    )


def step_subnets(space: SearchSpace, step: int, seed: int, n: int) -> list[ArchSpec]:
    """The ``n`` random candidates of ``step``: drawn from the space (its constraints included)
    with a generator seeded by (seed, step) alone, so a resumed run draws the same ones."""
    rng = random.Random((int(seed) << 32) + int(step))
    return [space.sample_genome(rng)[1] for _ in range(n)]


def distill_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) per predicted token (the last position, with no next token, left
    out as in ``next_token_loss``): in-place distillation from the largest sub-network."""
    s = F.log_softmax(student[:, :-1].float(), dim=-1).flatten(0, 1)
    t = F.log_softmax(teacher[:, :-1].float(), dim=-1).flatten(0, 1)
    return F.kl_div(s, t, log_target=True, reduction="batchmean")


class Sandwich:
    """The loop's strategy for a supernet: the largest, the smallest and random candidates per step."""

    def __init__(self, net: Supernet, smallest: ArchSpec, random_subnets: int, distill: bool, seed: int):
        self.model, self.smallest = net, smallest
        self.random_subnets, self.distill, self.seed = random_subnets, distill, seed

    def step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        net = self.model
        subnets = [net.largest, self.smallest, *step_subnets(net.space, step, self.seed, self.random_subnets)]
        losses, teacher = {}, None
        for i, spec in enumerate(subnets):
            out = net(batch, spec, labels=batch)
            loss = distill_loss(out.logits, teacher) if self.distill and teacher is not None else out.loss
            loss.backward()
            if i == 0:
                teacher = out.logits.detach()
                losses["largest"] = float(out.loss.detach())
            elif i == 1:
                losses["smallest"] = float(out.loss.detach())
        return losses


def checkpoint_dir(out_dir: str | os.PathLike) -> Path:
    """Where a run writing ``out_dir`` keeps its checkpoint: beside it, not inside, since the
    workflow removes a job's output folder before the job starts."""
    out = Path(out_dir)
    return out.with_name(out.name + ".checkpoint")


def validation_windows(ids: np.ndarray, eval_tokens: int, seq_len: int) -> torch.Tensor:
    """The first ``eval_tokens`` tokens of ``ids`` as non-overlapping ``seq_len`` windows."""
    n = min(int(eval_tokens), len(ids)) // seq_len
    if n < 1:
        raise ValueError(
            f"proxies.settings.supernet_loss.seq_len: the validation split has {len(ids)} "
            f"tokens, fewer than one window of {seq_len}"
        )
    return torch.from_numpy(np.asarray(ids[: n * seq_len], dtype=np.int64).reshape(n, seq_len))


def train_supernet(
    space: SearchSpace,
    train_ids: np.ndarray,
    valid_ids: np.ndarray,
    vocab_size: int,
    settings: SupernetSettings,
    out_dir: str | os.PathLike,
    *,
    progress: bool = True,
    prov: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the supernet of ``space`` on ``train_ids`` and write the folder ``out_dir`` (atomically;
    a killed run resumes from the checkpoint beside it and ends at the same weights). Returns the
    content of ``supernet.json``."""
    cfg = train_config(settings)
    if int(np.max(train_ids[: min(len(train_ids), 1 << 20)])) >= vocab_size:
        raise ValueError(f"vocab_size: token ids reach beyond the vocabulary of {vocab_size}")
    windows = validation_windows(valid_ids, settings.eval_tokens, settings.seq_len)

    def build() -> Sandwich:
        net = Supernet(space, vocab_size, settings.seq_len, seed=settings.seed)
        smallest = net.fit(extreme(space, largest=False))
        return Sandwich(net, smallest, settings.random_subnets, settings.distill, settings.seed)

    loop = Loop(
        cfg,
        build=build,
        batch=lambda step: train_batch(train_ids, step, cfg.batch_size, cfg.seq_len, cfg.seed),
        checkpoint=checkpoint_dir(out_dir),
        callbacks=[Progress(f"supernet {space.name}")] if progress else [],
        name=f"supernet ({space.name})",
    )
    result = loop.run()
    net: Supernet = loop.strategy.model
    tail = result["log"][-1]
    meta = {
        "space": space.to_dict(),
        "vocab_size": int(vocab_size),
        "max_seq_len": int(settings.seq_len),
        "layout": net.layout(),
        "largest": net.largest.to_json(),
        "smallest": loop.strategy.smallest.to_json(),
        "settings": asdict(settings),
        "steps": cfg.steps,
        "tokens_per_step": cfg.batch_size * cfg.seq_len,
        "subnets_per_step": 2 + settings.random_subnets,
        "train_seconds": result["seconds"],
        "final_loss": {"largest": tail["largest"], "smallest": tail["smallest"]},
        "valid_windows": list(windows.shape),
        "log": result["log"],
        "provenance": dict(prov or provenance("supernet", {"supernet_loss": asdict(settings)})),
    }
    with atomic_dir(Path(out_dir)) as tmp:
        save_model(net, str(tmp / WEIGHTS))
        save_file({"input_ids": windows.contiguous()}, str(tmp / WINDOWS))
        write_json(meta, tmp / META)
    loop.clear_checkpoints()
    return meta


__all__ = [
    "Sandwich",
    "checkpoint_dir",
    "distill_loss",
    "step_subnets",
    "train_config",
    "train_supernet",
    "validation_windows",
]
