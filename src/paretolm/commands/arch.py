"""``paretolm arch``: count parameters / FLOPs of specs and sample specs from a search space.

``paretolm arch count --json '<spec>' [--seq-len 192]`` prints one JSON object (``arch_id``,
``decoder_params``, ``embedding_params``, ``total_params``, ``flops``); ``--json -`` reads one spec
per line from standard input and prints one result (or ``{"line": N, "error": ...}``) per line,
in order, exiting 1 if any line failed. ``paretolm arch sample --space <yaml or name> -n N --seed S`` prints N canonical
specs as JSON lines. Counting never imports torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from paretolm.commands import COMMANDS
from paretolm.commands.jsonlines import each_spec
from paretolm.core.arch import ArchSpec
from paretolm.core.counting import DEFAULT_SEQ_LEN, count


def count_record(spec: ArchSpec, seq_len: int) -> dict[str, object]:
    if seq_len > spec.max_seq_len:
        raise ValueError(f"--seq-len: {seq_len} exceeds the architecture's max_seq_len={spec.max_seq_len}")
    c = count(spec, seq_len)
    return {
        "arch_id": spec.arch_id,
        "decoder_params": c.decoder_params,
        "embedding_params": c.embedding_params,
        "total_params": c.total_params,
        "flops": c.flops,
    }


def cmd_count(args: argparse.Namespace) -> int:
    if args.seq_len <= 0:
        raise ValueError(f"--seq-len: must be positive, got {args.seq_len}")
    if args.json == "-":
        return 1 if each_spec(sys.stdin, lambda spec: count_record(spec, args.seq_len)) else 0
    spec = ArchSpec.from_json(args.json)
    print(json.dumps(count_record(spec, args.seq_len)))
    return 0


def _resolve_space(name: str) -> Path:
    """A space file by path, by name under ``config/spaces`` of the cwd, then of the checkout."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        return path
    for base in (Path("config/spaces"), Path(__file__).resolve().parents[3] / "config" / "spaces"):
        if (base / f"{name}.yaml").exists():
            return base / f"{name}.yaml"
    raise ValueError(f"--space: no search space named {name!r} (give a YAML path or a name in config/spaces)")


def cmd_sample(args: argparse.Namespace) -> int:
    from paretolm.core.spaces import load_space

    if args.n <= 0:
        raise ValueError(f"-n: must be positive, got {args.n}")
    space = load_space(_resolve_space(args.space))
    for spec in space.sample(args.n, seed=args.seed):
        sys.stdout.write(spec.to_json() + "\n")
    return 0


@COMMANDS.register("arch")
def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("arch", help="count or sample architecture specs")
    sub = parser.add_subparsers(dest="arch_command", required=True)
    c = sub.add_parser("count", help="exact parameter and FLOP counts of a spec (JSON)")
    c.add_argument(
        "--json", required=True, metavar="SPEC", help="a spec as JSON, or '-' to read one spec per line from stdin"
    )
    c.add_argument("--seq-len", type=int, default=DEFAULT_SEQ_LEN, help="sequence length for FLOPs")
    c.set_defaults(func=cmd_count)
    s = sub.add_parser("sample", help="sample specs from a search space (JSON lines)")
    s.add_argument("--space", required=True, help="space YAML path or name under config/spaces")
    s.add_argument("-n", type=int, required=True, help="number of specs")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.set_defaults(func=cmd_sample)
