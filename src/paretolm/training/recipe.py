"""The training recipe: ``TrainConfig`` (config section ``train``), its named presets and the
learning-rate schedule. Plain Python, so the command line can offer every field as a flag without
importing torch; ``paretolm.training.trainer`` runs it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

OPTIMIZERS = ("lamb", "adam", "adamw")
SCHEDULES = ("cosine", "linear", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters (the ``train`` config section)."""

    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    steps: int = 200
    batch_size: int = 8
    seq_len: int = 64
    warmup_steps: int = 20
    schedule: str = "cosine"
    min_lr_ratio: float = 0.0
    dropout: float = 0.0
    attn_dropout: float = 0.0
    grad_clip: float | None = 1.0
    seed: int = 0
    checkpoint_every: int = 100
    log_every: int = 10
    threads: int = 1
    budgets: tuple[float, ...] = ()  # fractions of ``steps`` at which the validation loss is scored
    budget_tokens: int = 16384       # validation tokens scored at each budget

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, preset: str | None = None) -> TrainConfig:
        """Build from a mapping (unknown keys and bad values raise ``ValueError`` naming the key).

        ``preset`` (or a ``preset`` key) starts from one of ``PRESETS`` and the mapping overrides it.
        """
        data = dict(data or {})
        preset = data.pop("preset", preset)
        if preset and preset not in PRESETS:
            raise ValueError(f"train.preset: unknown preset {preset!r} (known: {sorted(PRESETS)})")
        base = PRESETS[preset] if preset else cls()
        known = {f.name: f for f in fields(cls)}
        for key in data:
            if key not in known:
                raise ValueError(f"train.{key}: unknown key (known: {sorted(known)})")
        if "budgets" in data:
            data["budgets"] = tuple(float(b) for b in data["budgets"] or ())
        cfg = replace(base, **data)
        cfg.validate()
        return cfg

    @classmethod
    def from_section(cls, train: Mapping[str, Any]) -> TrainConfig:
        """From the validated ``train`` config section (its data and job-routing keys left out)."""
        routing = ("dataset", "tokenizer", "cache_dir", "mem_mb", "runtime")
        return cls.from_dict({k: v for k, v in train.items() if k not in routing})

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"train.optimizer: expected one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"train.schedule: expected one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("steps", "batch_size", "seq_len", "checkpoint_every", "log_every", "threads"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"train.{name}: expected a positive integer, got {v!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"train.warmup_steps: expected a non-negative integer, "
                             f"got {self.warmup_steps!r}")
        if not self.lr > 0:
            raise ValueError(f"train.lr: must be positive, got {self.lr}")
        for name in ("dropout", "attn_dropout", "min_lr_ratio"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"train.{name}: must be in [0, 1], got {getattr(self, name)}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"train.grad_clip: must be positive or null, got {self.grad_clip}")
        for i, b in enumerate(self.budgets):
            if not 0 < b <= 1:
                raise ValueError(f"train.budgets[{i}]: a fraction of train.steps in (0, 1], got {b}")
        if list(self.budgets) != sorted(set(self.budgets)):
            raise ValueError(f"train.budgets: fractions must be increasing and distinct, got {list(self.budgets)}")
        if not isinstance(self.budget_tokens, int) or self.budget_tokens < 2:
            raise ValueError(f"train.budget_tokens: expected an integer >= 2, got {self.budget_tokens!r}")

    def budget_steps(self) -> dict[int, float]:
        """Step (1-based, after that many optimizer steps) -> the budget fraction it stands for."""
        return {max(1, round(b * self.steps)): b for b in self.budgets}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["budgets"] = list(self.budgets)
        return d


# LTS (NeurIPS 2022) training setups, as logged in LTS's own model_config.yaml files
# (../shared/data/ground-truth/lts-archai): WikiText-103 (random_TransXL_wt103): jitlamb, lr 0.01,
# eta_min 0.001, 40,000 steps, batch 256, tgt_len 192, warm-up 1,000, cosine, clip 0.25, dropout
# 0.1; LM1B (random_TransXL_lm1b): adam, lr 2.5e-4, eta_min 0, 100,000 steps, batch 224, tgt_len 32,
# warm-up 20,000, cosine, clip 0.25, dropout 0.0 (the GPT-2 LM1B configs log dropout 0.1). dropatt 0.0.
PRESETS: dict[str, TrainConfig] = {
    "lts-wt103": TrainConfig(optimizer="lamb", lr=0.01, weight_decay=0.0, steps=40_000, batch_size=256,
                             seq_len=192, warmup_steps=1000, schedule="cosine", min_lr_ratio=0.1,
                             dropout=0.1, attn_dropout=0.0, grad_clip=0.25, checkpoint_every=1000,
                             log_every=100),
    "lts-lm1b": TrainConfig(optimizer="adam", lr=2.5e-4, weight_decay=0.0, steps=100_000, batch_size=224,
                            seq_len=32, warmup_steps=20_000, schedule="cosine", min_lr_ratio=0.0,
                            dropout=0.0, attn_dropout=0.0, grad_clip=0.25, checkpoint_every=1000,
                            log_every=100),
    "cpu-tiny": TrainConfig(optimizer="adamw", lr=3e-3, steps=60, batch_size=4, seq_len=32, warmup_steps=6,
                            schedule="cosine", checkpoint_every=20, log_every=5),
    "cpu-small": TrainConfig(optimizer="adamw", lr=2e-3, steps=300, batch_size=16, seq_len=64,
                             warmup_steps=30, schedule="cosine", min_lr_ratio=0.1, checkpoint_every=100,
                             log_every=10),
}


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of ``cfg.lr`` at ``step`` (0-based): linear warm-up, then the schedule's decay to
    ``min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    if cfg.schedule == "cosine":
        decay = 0.5 * (1 + math.cos(math.pi * progress))
    elif cfg.schedule == "linear":
        decay = 1 - progress
    else:
        decay = 1.0
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * decay
