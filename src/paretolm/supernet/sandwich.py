"""A weight-sharing supernet over a search space, trained with the sandwich rule (HAT, AutoTinyBERT,
BigNAS), and the ``supernet_loss`` proxy's scoring with it.

One ``Supernet`` holds the largest weights a space allows; a candidate's sub-network is the
*leading slices* of them (``Supernet.forward`` reads top to bottom). ``train_supernet`` trains it
and writes ``supernet.safetensors``, ``supernet.json`` and ``valid_ids.safetensors`` into one
folder; ``load`` reads that folder back for scoring. Derivations and cost accounting:
docs/proxies.md ("supernet_loss").
"""

from __future__ import annotations

import math
import os
import random
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import atomic_dir, provenance, write_json
from paretolm.data import train_batch
from paretolm.models.layers import init_gpt2, next_token_loss
from paretolm.proxies.supernet_loss import SupernetSettings
from paretolm.core.spaces import SearchSpace
from paretolm.training.trainer import (
    TrainConfig,
    _save_checkpoint,
    lr_factor,
    make_optimizer,
    resume,
)

# Backbones whose sub-networks are slices of one pre-LN stack, and their FFN activation.
ACTIVATIONS = {"gpt2": "gelu", "opt": "relu"}
SLICED_GENES = ("n_layer", "d_model", "n_head", "d_inner")
WEIGHTS, META, WINDOWS = "supernet.safetensors", "supernet.json", "valid_ids.safetensors"


# -- what a supernet covers -----------------------------------------------------------------------
@dataclass(frozen=True)
class SupernetShape:
    """The weights' sizes (the largest value of every gene) and the range of each sliced gene
    that candidates must stay in (``ranges[gene] = (min, max)`` over the space's choices)."""

    backbone: str
    space: str
    vocab_size: int
    max_seq_len: int
    n_layer: int
    d_model: int
    d_inner: int
    ranges: Mapping[str, tuple[int, int]]

    @classmethod
    def of(cls, space: SearchSpace, vocab_size: int, max_seq_len: int) -> SupernetShape:
        """The shape covering ``space``, with the vocabulary and window length of the training data;
        ValueError naming the backbone or gene the supernet cannot slice."""
        if space.backbone not in ACTIVATIONS:
            raise ValueError(f"backbone: the supernet slices {' and '.join(ACTIVATIONS)} spaces, not "
                             f"{space.backbone!r} (space {space.name!r})")
        for gene, plain in (("div_val", 1), ("tie_weights", True)):
            values = _values(space, gene, default=plain)
            if set(values) != {plain}:
                raise ValueError(f"genes.{gene}: the supernet has one tied embedding ({gene} {plain}); "
                                 f"space {space.name!r} has {list(values)}")
        if "d_embed" in space.genes or space.fixed.get("d_embed") is not None:
            raise ValueError(f"genes.d_embed: the supernet's embedding width is d_model; space {space.name!r} "
                             "sets d_embed")
        ranges = {g: (int(min(v)), int(max(v))) for g in SLICED_GENES for v in [_values(space, g)]}
        return cls(backbone=space.backbone, space=space.name, vocab_size=int(vocab_size),
                   max_seq_len=int(max_seq_len), n_layer=ranges["n_layer"][1], d_model=ranges["d_model"][1],
                   d_inner=ranges["d_inner"][1], ranges=ranges)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SupernetShape:
        return cls(**{**data, "ranges": {k: tuple(v) for k, v in data["ranges"].items()}})

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ranges": {k: list(v) for k, v in self.ranges.items()}}

    def fit(self, spec: ArchSpec) -> ArchSpec:
        """``spec`` with the supernet's vocabulary and ``max_seq_len`` (neither is searched),
        checked to be a slice of it; ValueError naming the gene otherwise."""
        if spec.backbone != self.backbone:
            raise ValueError(f"backbone: this supernet is a {self.backbone} one (space {self.space!r}), "
                             f"the candidate is {spec.backbone!r}")
        spec = spec.plugin.retarget(spec, self.vocab_size, self.max_seq_len)
        if (spec.get("div_val") or 1) != 1:
            raise ValueError(f"div_val: the supernet has a plain tied embedding; the candidate has "
                             f"div_val={spec.div_val}")
        if (spec.get("d_embed") or spec.d_model) != spec.d_model:
            raise ValueError(f"d_embed: the supernet's embedding width is d_model={spec.d_model}; the "
                             f"candidate has d_embed={spec.d_embed}")
        if not spec.tie_weights:
            raise ValueError("tie_weights: the supernet's head is the tied embedding; the candidate unties it")
        for gene in SLICED_GENES:
            lo, hi = self.ranges[gene]
            values = getattr(spec, gene)
            for i, v in enumerate(values if isinstance(values, tuple) else (values,)):
                if not lo <= v <= hi:
                    where = f"{gene}[{i}]" if isinstance(values, tuple) else gene
                    raise ValueError(f"{where}: {v} is outside the supernet's range [{lo}, {hi}] "
                                     f"(space {self.space!r})")
        return spec


def _values(space: SearchSpace, gene: str, default: Any = None) -> tuple[Any, ...]:
    """Every value ``gene`` takes in ``space``: its choices, or its fixed value(s)."""
    if gene in space.genes:
        return tuple(space.genes[gene].choices)
    value = space.fixed.get(gene, default)
    if value is None:
        raise ValueError(f"genes.{gene}: space {space.name!r} neither searches nor fixes it")
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def extreme(space: SearchSpace, largest: bool) -> ArchSpec:
    """The largest (or smallest) sub-network of ``space``: every gene at its largest (smallest)
    choice, head counts and inner widths then restricted to those the width allows."""
    pick = max if largest else min
    genome = {key: pick(gene.choices) for key, gene in space.keys()}
    width = genome.get("d_model", space.fixed.get("d_model"))
    ratio = space.constraints.get("d_inner_min_ratio") or 0
    for key, gene in space.keys():
        if gene.name == "n_head":
            ok = [h for h in gene.choices if width % h == 0]
        elif gene.name == "d_inner":
            ok = [f for f in gene.choices if f >= ratio * width]
        else:
            continue
        if ok:
            genome[key] = pick(ok)
    return space.decode(genome)


# -- the model --------------------------------------------------------------------------------------
class SuperBlock(nn.Module):
    """The largest pre-LN block; a sub-network reads the leading slices of its weights. Q, K and V
    are one fused ``(3 * d_model, d_model)`` matrix, laid out as in ``models.layers.SelfAttention``."""

    def __init__(self, d_model: int, d_inner: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.attn_proj = nn.Linear(d_model, d_model)
        self.ln_2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, d_inner)
        self.mlp_proj = nn.Linear(d_inner, d_model)

    def qkv_slice(self, d: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The leading ``d x d`` block of each of Q, K and V, fused again: ``(3d, d)`` and ``(3d,)``."""
        full = self.qkv.weight.size(1)
        weight = self.qkv.weight.view(3, full, full)[:, :d, :d].reshape(3 * d, d)
        bias = self.qkv.bias.view(3, full)[:, :d].reshape(3 * d)
        return weight, bias


class Supernet(nn.Module):
    """Every sub-network of a space in one set of weights (see module docstring)."""

    def __init__(self, shape: SupernetShape):
        super().__init__()
        self.shape = shape
        self.activation = ACTIVATIONS[shape.backbone]
        self.wte = nn.Embedding(shape.vocab_size, shape.d_model)
        self.wpe = nn.Embedding(shape.max_seq_len, shape.d_model)
        self.layers = nn.ModuleList(SuperBlock(shape.d_model, shape.d_inner) for _ in range(shape.n_layer))
        self.ln_f = nn.LayerNorm(shape.d_model)
        init_gpt2(self, shape.n_layer)  # names ending in proj.weight get the residual scaling

    def forward(self, input_ids: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
        """Logits of ``spec``'s sub-network: the same computation as ``models.gpt2.GPT2LM`` on the
        sliced weights, op for op (so the logits are equal, not only close)."""
        spec = self.shape.fit(spec)
        d, t = spec.d_model, input_ids.size(1)
        wte = self.wte.weight[:, :d]  # also the tied head
        x = F.embedding(input_ids, wte) + self.wpe.weight[:t, :d]
        # the first n_layer blocks (zip stops at the spec's depth)
        for block, n_head, d_inner in zip(self.layers, spec.n_head, spec.d_inner):  # noqa: B905
            h = F.layer_norm(x, (d,), block.ln_1.weight[:d], block.ln_1.bias[:d])
            x = x + self._attention(block, h, n_head)
            h = F.layer_norm(x, (d,), block.ln_2.weight[:d], block.ln_2.bias[:d])
            x = x + self._ffn(block, h, d_inner)
        x = F.layer_norm(x, (d,), self.ln_f.weight[:d], self.ln_f.bias[:d])
        return F.linear(x, wte)

    @staticmethod
    def _attention(block: SuperBlock, x: torch.Tensor, n_head: int) -> torch.Tensor:
        """Causal attention on the leading ``d x d`` Q/K/V/output slices, split into ``n_head``
        heads of ``d / n_head`` (a head count only changes how the slice is split)."""
        b, t, d = x.shape
        weight, bias = block.qkv_slice(d)
        q, k, v = F.linear(x, weight, bias).view(b, t, 3, n_head, d // n_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).reshape(b, t, d)
        return F.linear(y, block.attn_proj.weight[:d, :d], block.attn_proj.bias[:d])

    def _ffn(self, block: SuperBlock, x: torch.Tensor, d_inner: int) -> torch.Tensor:
        """The FFN on ``fc[:d_inner, :d]`` and ``mlp_proj[:d, :d_inner]``."""
        d = x.size(-1)
        h = F.linear(x, block.fc.weight[:d_inner, :d], block.fc.bias[:d_inner])
        h = F.gelu(h, approximate="tanh") if self.activation == "gelu" else F.relu(h)
        return F.linear(h, block.mlp_proj.weight[:d, :d_inner], block.mlp_proj.bias[:d])

    def subnet_state_dict(self, spec: ArchSpec) -> dict[str, torch.Tensor]:
        """The sub-network's weights as the state dict of the plain model of ``spec`` (fitted to
        the supernet), copied: ``build(spec).load_state_dict(...)`` gives a standalone model."""
        spec = self.shape.fit(spec)
        d = spec.d_model
        out = {"wte.emb_layers.0.weight": self.wte.weight[:, :d],
               "wpe.weight": self.wpe.weight[:spec.max_seq_len, :d]}
        for i, (block, d_inner) in enumerate(zip(self.layers, spec.d_inner)):  # noqa: B905 (first n_layer)
            weight, bias = block.qkv_slice(d)
            p = f"layers.{i}."
            out.update({
                p + "ln_1.weight": block.ln_1.weight[:d], p + "ln_1.bias": block.ln_1.bias[:d],
                p + "attn.qkv.weight": weight, p + "attn.qkv.bias": bias,
                p + "attn.proj.weight": block.attn_proj.weight[:d, :d], p + "attn.proj.bias": block.attn_proj.bias[:d],
                p + "ln_2.weight": block.ln_2.weight[:d], p + "ln_2.bias": block.ln_2.bias[:d],
                p + "mlp.fc.weight": block.fc.weight[:d_inner, :d], p + "mlp.fc.bias": block.fc.bias[:d_inner],
                p + "mlp.proj.weight": block.mlp_proj.weight[:d, :d_inner],
                p + "mlp.proj.bias": block.mlp_proj.bias[:d],
            })
        out.update({"ln_f.weight": self.ln_f.weight[:d], "ln_f.bias": self.ln_f.bias[:d]})
        return {k: v.detach().clone().contiguous() for k, v in out.items()}

    def subnet(self, spec: ArchSpec) -> nn.Module:
        """A standalone plain model of ``spec`` holding a copy of its slice (eval mode)."""
        spec = self.shape.fit(spec)
        model = spec.plugin.build(spec)
        model.load_state_dict(self.subnet_state_dict(spec))
        return model.eval()


# -- training: the sandwich rule ----------------------------------------------------------------
def train_config(settings: SupernetSettings) -> TrainConfig:
    """The trainer's recipe for the supernet: AdamW, warm-up then cosine decay to 0.1 x lr,
    gradient clipping at 1."""
    cfg = TrainConfig(optimizer="adamw", lr=float(settings.lr), steps=settings.steps,
                      batch_size=settings.batch_size, seq_len=settings.seq_len,
                      warmup_steps=settings.warmup_steps, schedule="cosine", min_lr_ratio=0.1, grad_clip=1.0,
                      seed=settings.seed, checkpoint_every=settings.checkpoint_every,
                      log_every=min(10, settings.steps), threads=settings.threads)
    cfg.validate()
    return cfg


def step_subnets(space: SearchSpace, step: int, seed: int, n: int) -> list[ArchSpec]:
    """The ``n`` random sub-networks of ``step``: drawn from the space (its constraints included)
    with a generator seeded by (seed, step) alone, so a resumed run draws the same ones."""
    rng = random.Random((int(seed) << 32) + int(step))
    return [space.sample_genome(rng)[1] for _ in range(n)]


def distill_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) per predicted token (the last position, with no next token, left
    out as in ``next_token_loss``): in-place distillation from the largest sub-network."""
    s = F.log_softmax(student[:, :-1].float(), dim=-1).flatten(0, 1)
    t = F.log_softmax(teacher[:, :-1].float(), dim=-1).flatten(0, 1)
    return F.kl_div(s, t, log_target=True, reduction="batchmean")


def sandwich_step(net: Supernet, x: torch.Tensor, subnets: Sequence[ArchSpec], distill: bool) -> list[float]:
    """Accumulate the gradients of every sub-network's loss on batch ``x`` (``subnets[0]`` is the
    largest, whose logits are the soft labels under ``distill``); returns each one's cross-entropy."""
    losses, teacher = [], None
    for i, spec in enumerate(subnets):
        logits = net(x, spec)
        ce = next_token_loss(logits, x)
        loss = distill_loss(logits, teacher) if distill and teacher is not None else ce
        loss.backward()
        if i == 0:
            teacher = logits.detach()
        losses.append(float(ce.detach()))
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
        raise ValueError(f"proxies.settings.supernet_loss.seq_len: the validation split has {len(ids)} "
                         f"tokens, fewer than one window of {seq_len}")
    return torch.from_numpy(np.asarray(ids[: n * seq_len], dtype=np.int64).reshape(n, seq_len))


def train_supernet(space: SearchSpace, train_ids: np.ndarray, valid_ids: np.ndarray, vocab_size: int,
                   settings: SupernetSettings, out_dir: str | os.PathLike, *, progress: bool = True,
                   prov: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train the supernet of ``space`` on ``train_ids`` and write the folder ``out_dir`` (atomically;
    a killed run resumes from the checkpoint beside it and ends at the same weights). Every step:
    the largest, the smallest and ``random_subnets`` random sub-networks on one batch, gradients
    summed, one AdamW step. Returns the content of ``supernet.json``."""
    from safetensors.torch import save_file, save_model

    out = Path(out_dir)
    cfg = train_config(settings)
    if int(np.max(train_ids[: min(len(train_ids), 1 << 20)])) >= vocab_size:
        raise ValueError(f"vocab_size: token ids reach beyond the vocabulary of {vocab_size}")
    windows = validation_windows(valid_ids, settings.eval_tokens, settings.seq_len)
    shape = SupernetShape.of(space, vocab_size, settings.seq_len)
    largest, smallest = shape.fit(extreme(space, True)), shape.fit(extreme(space, False))
    torch.set_num_threads(cfg.threads)
    ckpt = checkpoint_dir(out)

    def fresh() -> tuple[Any, Any, Any]:
        torch.manual_seed(cfg.seed)
        net = Supernet(shape).train()
        optimizer = make_optimizer(net, cfg)
        return net, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))

    (net, optimizer, scheduler), start, log, _ = resume(ckpt, fresh)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc=f"supernet {space.name}", unit="step", mininterval=1.0)
    offset = log[-1]["seconds"] if log else 0.0  # training time of the runs before a resume
    t0 = time.perf_counter()
    for step in range(start, cfg.steps):
        x = train_batch(train_ids, step, cfg.batch_size, cfg.seq_len, cfg.seed)
        optimizer.zero_grad(set_to_none=True)
        subnets = [largest, smallest, *step_subnets(space, step, cfg.seed, settings.random_subnets)]
        losses = sandwich_step(net, x, subnets, settings.distill)
        if not all(math.isfinite(v) for v in losses):
            raise FloatingPointError(f"supernet: a loss became {losses} at step {step} (space {space.name!r})")
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        done = step + 1
        log.append({"step": done, "largest": losses[0], "smallest": losses[1], "lr": lr,
                    "seconds": offset + time.perf_counter() - t0})
        if bar is not None:
            bar.update(1)
            if done % cfg.log_every == 0:
                bar.set_postfix(largest=f"{losses[0]:.3f}", smallest=f"{losses[1]:.3f}")
        if done % cfg.checkpoint_every == 0 and done < cfg.steps:
            _save_checkpoint(ckpt, net, optimizer, scheduler, done, log)
    if bar is not None:
        bar.close()

    tail = log[-cfg.log_every:]
    meta = {
        "shape": shape.to_dict(),
        "largest": largest.to_json(),
        "smallest": smallest.to_json(),
        "settings": asdict(settings),
        "steps": cfg.steps,
        "tokens_per_step": cfg.batch_size * cfg.seq_len,
        "subnets_per_step": 2 + settings.random_subnets,
        "train_seconds": log[-1]["seconds"],
        "final_loss": {"largest": float(np.mean([r["largest"] for r in tail])),
                       "smallest": float(np.mean([r["smallest"] for r in tail]))},
        "valid_windows": list(windows.shape),
        "log": log,
        "provenance": dict(prov or provenance("supernet", {"supernet_loss": asdict(settings)})),
    }
    with atomic_dir(out) as tmp:
        save_model(net, str(tmp / WEIGHTS))
        save_file({"input_ids": windows.contiguous()}, str(tmp / WINDOWS))
        write_json(meta, tmp / META)
    for c in (ckpt, ckpt.with_name(ckpt.name + ".old")):
        shutil.rmtree(c, ignore_errors=True)
    return meta


# -- scoring --------------------------------------------------------------------------------------
@dataclass
class TrainedSupernet:
    """A trained supernet folder, read back: the weights, their record and the validation windows."""

    net: Supernet
    meta: dict[str, Any]
    windows: torch.Tensor

    @torch.no_grad()
    def loss(self, spec: ArchSpec, batch_size: int = 16) -> float:
        """Mean next-token loss (nats/token) of ``spec``'s sub-network over the validation windows."""
        total = 0.0
        for i in range(0, len(self.windows), batch_size):
            x = self.windows[i:i + batch_size]
            total += float(next_token_loss(self.net(x, spec), x)) * len(x)
        return total / len(self.windows)


_LOADED: dict[tuple[str, int], TrainedSupernet] = {}


def load(folder: str | os.PathLike) -> TrainedSupernet:
    """The trained supernet in ``folder``, cached in this process (a rewritten folder is re-read)."""
    from safetensors.torch import load_file, load_model

    folder = Path(folder)
    meta_path = folder / META
    if not meta_path.is_file():
        raise ValueError(f"supernet: no trained supernet in {str(folder)!r} ({META} missing); train it with "
                         f"`snakemake --cores 1 {folder}` (rule supernet) or `paretolm proxy supernet --space "
                         f"<space file> --out {folder}`")
    key = (str(folder.resolve()), meta_path.stat().st_mtime_ns)
    if key not in _LOADED:
        import json

        meta = json.loads(meta_path.read_text())
        net = Supernet(SupernetShape.from_dict(meta["shape"]))
        load_model(net, str(folder / WEIGHTS))
        _LOADED[key] = TrainedSupernet(net.eval(), meta, load_file(str(folder / WINDOWS))["input_ids"])
    return _LOADED[key]


__all__ = ["Supernet", "SupernetShape", "TrainedSupernet", "extreme", "load", "sandwich_step", "train_supernet"]
