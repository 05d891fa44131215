"""Training throughput: paretolm's GPT-2 backbone vs Hugging Face's GPT2LMHeadModel, same shape.

Both models get the same shape (layers, width, heads, FFN width, vocabulary, 1024 positions, tied
embedding, no dropout) and the same AdamW training step (forward, next-token loss, backward,
optimizer step) on the same random token batches. Each repeat times ``--steps`` steps after
warm-up; the models alternate between repeats so drifting machine load hits both alike. Reports
the median tokens/s over repeats and writes JSON to ``benchmarks/results/``.

    python benchmarks/bench_training.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch


def paretolm_model(args):
    from paretolm.core.arch import ArchSpec
    from paretolm.models import build_model

    spec = ArchSpec(
        backbone="gpt2",
        n_layer=args.n_layer,
        d_model=args.d_model,
        n_head=args.n_head,
        d_inner=args.d_inner,
        vocab_size=args.vocab,
        max_seq_len=1024,
    )
    model = build_model(spec)

    def loss(x):
        return model(x, labels=x).loss

    return model, loss


def hf_model(args):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        n_layer=args.n_layer,
        n_embd=args.d_model,
        n_head=args.n_head,
        n_inner=args.d_inner,
        vocab_size=args.vocab,
        n_positions=1024,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
    )
    model = GPT2LMHeadModel(cfg)

    def loss(x):
        return model(input_ids=x, labels=x).loss

    return model, loss


def time_steps(model, loss_fn, batches) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    t0 = time.perf_counter()
    for x in batches:
        loss = loss_fn(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--d-inner", type=int, default=1024)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/bench_training.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {"paretolm": paretolm_model(args), "hf_gpt2": hf_model(args)}
    n_params = {k: sum(p.numel() for p in m.parameters()) for k, (m, _) in models.items()}
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, args.vocab, (args.batch, args.seq_len), generator=gen) for _ in range(args.steps)]
    for m, f in models.values():  # warm-up
        time_steps(m, f, batches[:2])
    tokens = args.steps * args.batch * args.seq_len
    rates: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(args.repeats):
        for k, (m, f) in models.items():
            rates[k].append(tokens / time_steps(m, f, batches))
    result = {
        "shape": {
            k: getattr(args, k) for k in ("n_layer", "d_model", "n_head", "d_inner", "vocab", "batch", "seq_len")
        },
        "steps_per_repeat": args.steps,
        "repeats": args.repeats,
        "threads": args.threads,
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "parameters": n_params,
        "tokens_per_s_median": {k: statistics.median(v) for k, v in rates.items()},
        "tokens_per_s_all": rates,
    }
    result["ratio_paretolm_over_hf"] = (
        result["tokens_per_s_median"]["paretolm"] / result["tokens_per_s_median"]["hf_gpt2"]
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("parameters", "tokens_per_s_median", "ratio_paretolm_over_hf")}, indent=2))


if __name__ == "__main__":
    main()
