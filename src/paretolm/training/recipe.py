"""The training recipe: ``TrainConfig`` (config section ``train``), its named presets and the
learning-rate schedule. Plain Python, so the command line can offer every field as a flag without
importing torch; ``paretolm.training.trainer`` runs it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, get_args

from paretolm.core.settings import check, setting

Optimizer = Literal["lamb", "adam", "adamw"]
Schedule = Literal["cosine", "linear", "constant"]
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
SCHEDULES: tuple[str, ...] = get_args(Schedule)
BIG = 1_000_000_000


@dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters (the ``train`` config section, whose schema is generated from this
    class without defaults: a preset fills what the config leaves out)."""

    optimizer: Optimizer = setting("adamw")
    lr: float = setting(1e-3, exclusive_minimum=0, maximum=10)
    weight_decay: float = setting(0.0, minimum=0, maximum=10)
    beta1: float = setting(0.9, minimum=0, exclusive_maximum=1)
    beta2: float = setting(0.999, minimum=0, exclusive_maximum=1)
    eps: float = setting(1e-8, exclusive_minimum=0, maximum=1)
    steps: int = setting(200, minimum=1, maximum=BIG)
    batch_size: int = setting(8, minimum=1, maximum=65536)
    seq_len: int = setting(64, minimum=2, maximum=1048576)
    warmup_steps: int = setting(20, minimum=0, maximum=BIG)
    schedule: Schedule = setting("cosine")
    min_lr_ratio: float = setting(0.0, minimum=0, maximum=1)
    dropout: float = setting(0.0, minimum=0, maximum=1)
    attn_dropout: float = setting(0.0, minimum=0, maximum=1)
    grad_clip: float | None = setting(1.0, exclusive_minimum=0, maximum=1_000_000)
    seed: int = setting(0, minimum=0, maximum=4294967295)
    checkpoint_every: int = setting(100, minimum=1, maximum=BIG)
    log_every: int = setting(10, minimum=1, maximum=BIG)
    threads: int = setting(1, minimum=1, maximum=1024)
    budgets: tuple[float, ...] = setting(
        (),
        max_items=64,
        items={"exclusiveMinimum": 0, "maximum": 1},
        doc="Fractions of train.steps at which the validation loss is scored (the SRC-against-budget curve).",
    )
    budget_tokens: int = setting(16384, minimum=2, maximum=100_000_000, doc="Validation tokens scored at each budget.")

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
        """The fields' limits (ValueError naming ``train.<field>``) and what they cannot say alone."""
        check(self, "train")
        if list(self.budgets) != sorted(set(self.budgets)):
            raise ValueError(f"train.budgets: fractions must be increasing and distinct, got {list(self.budgets)}")

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
    "lts-wt103": TrainConfig(
        optimizer="lamb",
        lr=0.01,
        weight_decay=0.0,
        steps=40_000,
        batch_size=256,
        seq_len=192,
        warmup_steps=1000,
        schedule="cosine",
        min_lr_ratio=0.1,
        dropout=0.1,
        attn_dropout=0.0,
        grad_clip=0.25,
        checkpoint_every=1000,
        log_every=100,
    ),
    "lts-lm1b": TrainConfig(
        optimizer="adam",
        lr=2.5e-4,
        weight_decay=0.0,
        steps=100_000,
        batch_size=224,
        seq_len=32,
        warmup_steps=20_000,
        schedule="cosine",
        min_lr_ratio=0.0,
        dropout=0.0,
        attn_dropout=0.0,
        grad_clip=0.25,
        checkpoint_every=1000,
        log_every=100,
    ),
    "cpu-tiny": TrainConfig(
        optimizer="adamw",
        lr=3e-3,
        steps=60,
        batch_size=4,
        seq_len=32,
        warmup_steps=6,
        schedule="cosine",
        checkpoint_every=20,
        log_every=5,
    ),
    "cpu-small": TrainConfig(
        optimizer="adamw",
        lr=2e-3,
        steps=300,
        batch_size=16,
        seq_len=64,
        warmup_steps=30,
        schedule="cosine",
        min_lr_ratio=0.1,
        checkpoint_every=100,
        log_every=10,
    ),
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
