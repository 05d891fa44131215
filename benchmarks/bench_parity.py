"""Training parity: paretolm's GPT-2 trainer against stock Hugging Face ``GPT2LMHeadModel``.

For each shape (homogeneous layers, so that ``GPT2LMHeadModel`` can express it) and each seed, both
implementations train on the very same batches (``paretolm.data.train_batch`` of the seed), with
the same optimizer (``paretolm.training.trainer.make_optimizer``: AdamW, no decay on biases and norms), LR
schedule (``training.lr_factor``) and clipping; paretolm through ``training.train`` itself, HF in
a loop that repeats it step for step. Data is the package's own pipeline (``paretolm.data``):
KJV cut 90/5/5 by verse order, a 4,096-token byte-level BPE trained on its train split, as the
``kjv`` / ``kjv_bpe`` entries of ``config/config.yaml``. Validation loss is
``paretolm.validation.evaluation.split_perplexity`` (non-overlapping windows of ``seq_len``) on a prefix of
the validation split, the same code for both models.

Initialisation: both use GPT-2's scheme (N(0, 0.02) weights and position table, zero biases,
LayerNorm 1/0, residual projections ``attn.proj``/``mlp.proj`` = HF ``c_proj`` scaled by
1/sqrt(2 n_layer)), tanh-approximated GELU (HF ``gelu_new``), LM head tied to the token embedding,
no dropout, LayerNorm eps 1e-5. They draw their weights in a different order, so one seed gives
different weights in the two: the comparison is between two seed distributions. Per shape it
reports mean and standard deviation (ddof 1) over seeds of the final validation loss (and of the
final training loss), the difference of the means and a verdict: parity when
``|mean_hf - mean_paretolm| <= max(sd_hf, sd_paretolm)``. That rule, not a t-test, decides: with
3 seeds a 2-sample t-test at 5 % only rejects differences beyond about 2.3 standard deviations (it
has almost no power), while the spread rule asks for agreement within one; Welch's p-value is
reported beside it.

To tell the implementation from the seed's weight draw, each seed also trains GPT2LMHeadModel from
paretolm's own initial weights (copied, ``copy_weights``) on the same batches: per-seed
``hf_gpt2_same_init - paretolm`` differences (``val_loss_same_init``) are what remains of the
implementations' difference once the draw is shared (float round-off compounding over the steps).

    python benchmarks/bench_parity.py [--seeds 0 1 2] [--steps 200] [--no-same-init]
        [--shapes 1x160:2:384 3x96:2:256 5x64:2:128]

Writes ``benchmarks/results/parity.json`` (command, machine, versions, settings, per-seed runs,
per-shape summary). ``tests/test_parity.py`` is the small guard of the same comparison.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import hardware_fingerprint, library_versions, write_json
from paretolm.data import DataConfig, data_config, train_batch
from paretolm.training.loop import make_optimizer
from paretolm.training.recipe import TrainConfig, lr_factor
from paretolm.training.trainer import build_trainable, load_model, train
from paretolm.validation.evaluation import split_perplexity

REPO = Path(__file__).resolve().parent.parent

# The `kjv` / `kjv_bpe` entries of config/config.yaml (the validation workflow's training data);
# $PARETOLM_DATA is ../shared/data unless set.
DATA_BLOCK: dict[str, Any] = {
    "dataset": "kjv",
    "tokenizer": "kjv_bpe",
    "datasets": {
        "kjv": {
            "files": "$PARETOLM_DATA/corpora/kjv/kjv_verses.txt",
            "split": {"train": 0.9, "validation": 0.05, "test": 0.05},
        }
    },
    "tokenizers": {"kjv_bpe": {"type": "bpe", "vocab_size": 4096, "train_on": "kjv"}},
}
DEFAULT_SHAPES = ("1x160:2:384", "3x96:2:256", "5x64:2:128")  # shallow-wide, middle, deep-narrow


def kjv_data(cache_dir: str | os.PathLike, root: str | os.PathLike = REPO) -> DataConfig:
    """The package's data block for KJV + its trained BPE, cached under ``cache_dir``."""
    return data_config(dict(DATA_BLOCK, cache_dir=str(cache_dir)), root=root)


def parse_shape(text: str) -> tuple[int, int, int, int]:
    """``LxW:H:F`` -> (layers, width, heads, FFN width)."""
    try:
        lw, heads, inner = text.split(":")
        layers, width = lw.lower().split("x")
        return int(layers), int(width), int(heads), int(inner)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"shape {text!r}: expected LAYERSxWIDTH:HEADS:INNER, e.g. 1x160:2:384"
        ) from None


def gpt2_spec(layers: int, width: int, heads: int, inner: int, vocab_size: int, seq_len: int) -> ArchSpec:
    return ArchSpec.from_dict(
        dict(
            backbone="gpt2",
            n_layer=layers,
            d_model=width,
            n_head=[heads] * layers,
            d_inner=[inner] * layers,
            div_val=1,
            vocab_size=vocab_size,
            max_seq_len=seq_len,
            tie_weights=True,
        )
    )


def train_config(
    steps: int, batch_size: int, seq_len: int, seed: int, lr: float = 3e-3, threads: int = 1
) -> TrainConfig:
    # checkpoints off (nothing to resume), a log window of 10 steps for the final training loss
    return TrainConfig(
        optimizer="adamw",
        lr=lr,
        weight_decay=0.01,
        steps=steps,
        batch_size=batch_size,
        seq_len=seq_len,
        warmup_steps=max(1, steps // 10),
        schedule="cosine",
        min_lr_ratio=0.0,
        grad_clip=1.0,
        checkpoint_every=10**9,
        log_every=min(10, steps),
        threads=threads,
        seed=seed,
    )


def hf_gpt2(spec: ArchSpec, seed: int) -> torch.nn.Module:
    """Stock ``GPT2LMHeadModel`` of ``spec``'s shape: GPT-2 init, gelu_new, tied head, no dropout."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(
        n_layer=spec.n_layer,
        n_embd=spec.d_model,
        n_head=spec.n_head[0],
        n_inner=spec.d_inner[0],
        n_positions=spec.max_seq_len,
        vocab_size=spec.vocab_size,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        initializer_range=0.02,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=None,
    )
    return GPT2LMHeadModel(cfg)


@torch.no_grad()
def copy_weights(ours: torch.nn.Module, hf: torch.nn.Module) -> None:
    """Load paretolm's GPT-2 weights (the HF wrapper or its backbone) into a ``GPT2LMHeadModel`` of
    the same shape. HF's ``Conv1D`` stores (in, out), ``nn.Linear`` (out, in): transposed; the
    fused QKV has the same [q | k | v] x heads layout in both."""
    b = getattr(ours, "backbone", ours)
    t = hf.transformer
    t.wte.weight.copy_(b.wte.emb_layers[0].weight)
    t.wpe.weight.copy_(b.wpe.weight)
    for src, dst in zip(b.layers, t.h, strict=True):
        for a, c in ((src.ln_1, dst.ln_1), (src.ln_2, dst.ln_2)):
            c.weight.copy_(a.weight)
            c.bias.copy_(a.bias)
        for lin, conv in (
            (src.attn.qkv, dst.attn.c_attn),
            (src.attn.proj, dst.attn.c_proj),
            (src.mlp.fc, dst.mlp.c_fc),
            (src.mlp.proj, dst.mlp.c_proj),
        ):
            conv.weight.copy_(lin.weight.t())
            conv.bias.copy_(lin.bias)
    t.ln_f.weight.copy_(b.ln_f.weight)
    t.ln_f.bias.copy_(b.ln_f.bias)
    if hf.lm_head.weight.data_ptr() != t.wte.weight.data_ptr():
        hf.lm_head.weight.copy_(t.wte.weight)


def train_hf(model: torch.nn.Module, ids: np.ndarray, cfg: TrainConfig) -> list[float]:
    """``training.train``'s loop for a stock HF model: same batches, optimizer, schedule, clipping.
    Returns the loss of every step."""
    torch.set_num_threads(cfg.threads)
    opt = make_optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    model.train()
    losses = []
    for step in range(cfg.steps):
        x = train_batch(ids, step, cfg.batch_size, cfg.seq_len, cfg.seed)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def val_loss(model: torch.nn.Module, split: Any, seq_len: int, max_tokens: int | None) -> float:
    """Mean next-token NLL (nats) over the first ``max_tokens`` tokens of ``split``."""
    return math.log(split_perplexity(model, split, seq_len, max_tokens=max_tokens)["ppl"])


def run_pair(
    spec: ArchSpec,
    cfg: TrainConfig,
    train_ids: np.ndarray,
    valid: Any,
    eval_tokens: int | None,
    same_init: bool = False,
) -> dict[str, dict[str, float]]:
    """Train both implementations for one seed; final training loss (mean of the last
    ``log_every`` steps), validation loss and seconds of each. ``same_init`` also trains
    GPT2LMHeadModel from paretolm's initial weights of that seed (``hf_gpt2_same_init``), which
    separates what the implementation does from what the seed's weight draw does."""
    out: dict[str, dict[str, float]] = {}
    if same_init:
        torch.manual_seed(cfg.seed)  # as training.train builds its model
        t0 = time.perf_counter()
        twin = hf_gpt2(spec, cfg.seed)
        copy_weights(build_trainable(spec, cfg), twin)
        losses = train_hf(twin, train_ids, cfg)
        out["hf_gpt2_same_init"] = {
            "final_train_loss": float(np.mean(losses[-cfg.log_every :])),
            "val_loss": val_loss(twin, valid, cfg.seq_len, eval_tokens),
            "seconds": time.perf_counter() - t0,
        }
    with tempfile.TemporaryDirectory(prefix="paretolm-parity-") as tmp:
        t0 = time.perf_counter()
        summary = train(spec, train_ids, cfg, tmp, progress=False)
        ours = load_model(Path(tmp) / "model")
        out["paretolm"] = {
            "final_train_loss": summary["final_loss"],
            "val_loss": val_loss(ours, valid, cfg.seq_len, eval_tokens),
            "seconds": time.perf_counter() - t0,
        }
    t0 = time.perf_counter()
    hf = hf_gpt2(spec, cfg.seed)
    losses = train_hf(hf, train_ids, cfg)
    out["hf_gpt2"] = {
        "final_train_loss": float(np.mean(losses[-cfg.log_every :])),
        "val_loss": val_loss(hf, valid, cfg.seq_len, eval_tokens),
        "seconds": time.perf_counter() - t0,
    }
    return out


def spread_verdict(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Means, sds (ddof 1), the difference of the means (b - a), the spread rule and Welch's test."""
    from scipy import stats

    ma, mb = statistics.fmean(a), statistics.fmean(b)
    sa = statistics.stdev(a) if len(a) > 1 else float("nan")
    sb = statistics.stdev(b) if len(b) > 1 else float("nan")
    delta = mb - ma
    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue) if len(a) > 1 and len(b) > 1 else float("nan")
    return {
        "mean_paretolm": ma,
        "sd_paretolm": sa,
        "mean_hf_gpt2": mb,
        "sd_hf_gpt2": sb,
        "delta_mean": delta,
        "spread": max(sa, sb),
        "within_spread": bool(abs(delta) <= max(sa, sb)),
        "welch_p": p,
        "welch_reject_at_5pct": bool(p < 0.05),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--shapes", nargs="+", type=parse_shape, default=[parse_shape(s) for s in DEFAULT_SHAPES], metavar="LxW:H:F"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--eval-tokens", type=int, default=16384, help="validation tokens scored (0: all)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--no-same-init",
        action="store_true",
        help="skip the third run per seed (GPT2LMHeadModel from paretolm's initial weights)",
    )
    p.add_argument("--cache-dir", default=str(REPO / "results/cache/data"))
    p.add_argument("--out", default=str(REPO / "benchmarks/results/parity.json"))
    args = p.parse_args()
    t_start = time.perf_counter()
    load_before = os.getloadavg()[0]
    dc = kjv_data(args.cache_dir)
    train_ids, valid = dc.split("train"), dc.split("validation")
    vocab = dc.vocab_size()
    eval_tokens = args.eval_tokens or None
    runs, summary = [], {}
    for layers, width, heads, inner in args.shapes:
        spec = gpt2_spec(layers, width, heads, inner, vocab, args.seq_len)
        name = f"{layers}x{width} h{heads} f{inner}"
        per_seed = []
        for seed in args.seeds:
            cfg = train_config(args.steps, args.batch_size, args.seq_len, seed, args.lr, args.threads)
            r = run_pair(spec, cfg, train_ids.ids, valid, eval_tokens, same_init=not args.no_same_init)
            per_seed.append(r)
            runs.append({"shape": name, "seed": seed, **r})
            print(
                f"{name:<18} seed {seed}: val loss paretolm {r['paretolm']['val_loss']:.4f}  "
                f"hf {r['hf_gpt2']['val_loss']:.4f}  ({r['paretolm']['seconds']:.0f} s / "
                f"{r['hf_gpt2']['seconds']:.0f} s)",
                flush=True,
            )
        n_params = sum(p.numel() for p in hf_gpt2(spec, 0).parameters())
        summary[name] = {
            "parameters": n_params,
            "val_loss": spread_verdict(
                [r["paretolm"]["val_loss"] for r in per_seed], [r["hf_gpt2"]["val_loss"] for r in per_seed]
            ),
            "final_train_loss": spread_verdict(
                [r["paretolm"]["final_train_loss"] for r in per_seed],
                [r["hf_gpt2"]["final_train_loss"] for r in per_seed],
            ),
        }
        if not args.no_same_init:
            d = [r["hf_gpt2_same_init"]["val_loss"] - r["paretolm"]["val_loss"] for r in per_seed]
            summary[name]["val_loss_same_init"] = {
                "per_seed_delta": d,
                "mean_delta": statistics.fmean(d),
                "sd_delta": statistics.stdev(d) if len(d) > 1 else float("nan"),
                "max_abs_delta": max(map(abs, d)),
            }
        v = summary[name]["val_loss"]
        print(
            f"{name:<18} val loss paretolm {v['mean_paretolm']:.4f} ± {v['sd_paretolm']:.4f}  "
            f"hf {v['mean_hf_gpt2']:.4f} ± {v['sd_hf_gpt2']:.4f}  delta {v['delta_mean']:+.4f}  "
            f"{'within' if v['within_spread'] else 'OUTSIDE'} spread  (Welch p {v['welch_p']:.2f})",
            flush=True,
        )
        if not args.no_same_init:
            print(
                f"{name:<18} same initial weights: hf - paretolm val loss per seed "
                + " ".join(f"{x:+.4f}" for x in summary[name]["val_loss_same_init"]["per_seed_delta"]),
                flush=True,
            )
    result = {
        "command": "python benchmarks/bench_parity.py " + " ".join(sys.argv[1:]),
        "machine": {
            **hardware_fingerprint(),
            "platform": platform.platform(),
            "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        },
        "versions": library_versions(),
        "settings": {
            "data": {k: DATA_BLOCK[k] for k in ("dataset", "tokenizer")},
            "vocab_size": vocab,
            "seeds": args.seeds,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "seq_len": args.seq_len,
            "lr": args.lr,
            "eval_tokens": eval_tokens or len(valid.ids),
            "threads": args.threads,
            "train": train_config(args.steps, args.batch_size, args.seq_len, 0, args.lr, args.threads).to_dict()
            | {"seed": "per run"},
            "verdict_rule": "|mean_hf - mean_paretolm| <= max(sd_hf, sd_paretolm) (sd ddof 1); "
            "Welch p reported beside it",
        },
        "summary": summary,
        "runs": runs,
        "seconds": time.perf_counter() - t_start,
    }
    write_json(result, args.out)
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
