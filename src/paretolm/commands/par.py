"""``paretolm par``: PAR Transformer's design rules and its differentiable (Gumbel-softmax) search."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from paretolm.commands import COMMANDS
from paretolm.core.arch import ArchSpec
from paretolm.core.backbones.par import compress_par


@COMMANDS.register("par")
def register(subparsers: argparse._SubParsersAction) -> None:
    par = subparsers.add_parser("par", help="PAR Transformer: design rules and Gumbel-softmax search")
    sub = par.add_subparsers(dest="par_command", required=True)

    r = sub.add_parser("rules", help="which of PAR's design rules a layer string breaks (exit 1 if any)")
    r.add_argument("layers", help="PAR notation, e.g. '(sfff)x6 (f)x8'")
    r.set_defaults(func=_rules)

    s = sub.add_parser("search", help="differentiable search over s/f/i at every sub-layer position")
    s.add_argument("--text", type=Path, required=True, help="UTF-8 training text (byte-level tokens)")
    s.add_argument("--positions", type=int, default=12, help="sub-layer positions to choose")
    s.add_argument("--d-model", type=int, default=64)
    s.add_argument("--n-head", type=int, default=4)
    s.add_argument("--d-inner", type=int, default=256)
    s.add_argument("--steps", type=int, default=200, help="weight + architecture update pairs")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--seq-len", type=int, default=64)
    s.add_argument(
        "--cost-weight", type=float, default=0.0, help="weight of the expected relative FLOPs in the architecture loss"
    )
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_search)


def _rules(args: argparse.Namespace) -> int:
    from paretolm.search.methods.par import par_design_rules

    spec = ArchSpec(backbone="par", layers=args.layers, d_model=64, n_head=1, d_inner=64)
    broken = par_design_rules(spec)
    print(json.dumps({"layers": compress_par(spec.layers), "broken": broken}))
    return 1 if broken else 0


def _search(args: argparse.Namespace) -> int:
    """Byte-level tokens keep the search free of any tokenizer file; the chosen layer string is
    what transfers to a full-size model."""
    import torch

    from paretolm.models.par import token_batches
    from paretolm.search.methods.par import par_design_rules
    from paretolm.search.methods.par.search import gumbel_par_search

    data = args.text.read_bytes()
    if len(data) <= 2 * args.seq_len:
        raise ValueError(f"text: {args.text} is too short for --seq-len {args.seq_len}")
    tokens = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
    cut = int(len(tokens) * 0.9)  # weights train on the first 90 %, the architecture on the rest
    result = gumbel_par_search(
        token_batches(tokens[:cut], args.batch_size, args.seq_len, args.seed),
        arch_batches=token_batches(tokens[cut:], args.batch_size, args.seq_len, args.seed + 1),
        n_sublayer=args.positions,
        d_model=args.d_model,
        n_head=args.n_head,
        d_inner=args.d_inner,
        vocab_size=256,
        max_seq_len=args.seq_len,
        steps=args.steps,
        seed=args.seed,
        cost_weight=args.cost_weight,
    )
    print(
        json.dumps(
            {
                "arch_id": result.spec.arch_id,
                "layers": result.notation,
                "spec": result.spec.to_dict(),
                "probs": [[round(p, 4) for p in row] for row in result.probs],
                "broken_rules": par_design_rules(result.spec),
                "final_loss": result.history[-1] if result.history else None,
            }
        )
    )
    return 0
