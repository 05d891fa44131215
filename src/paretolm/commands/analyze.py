"""``paretolm analyze``: analyses of published ground truth.

``paretolm analyze lts-logs <dir> --out table.parquet`` recomputes every analytic proxy on LTS's
trained architectures and prints and writes their rank correlation with LTS's perplexities.
"""

from __future__ import annotations

import argparse
import sys

from paretolm.commands import COMMANDS


@COMMANDS.register("analyze")
def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("analyze", help="analyse published ground truth (LTS logs)")
    sub = parser.add_subparsers(dest="analysis", required=True)
    lts = sub.add_parser(
        "lts-logs",
        help="SRC/Kendall of every analytic proxy vs LTS's measured perplexity, d_avg on Pareto sets",
        description="The `src` column is Spearman(proxy, perplexity): negative for a good proxy.",
    )
    lts.add_argument("dir", help="the lts-archai folder (or a data root holding ground-truth/lts-archai)")
    lts.add_argument("--out", required=True, help="Parquet file to write (atomically, with provenance)")
    lts.add_argument("--sets", nargs="*", default=None, help="only these sets (default: all)")
    lts.add_argument("--proxies", nargs="*", default=None, help="only these proxies (default: all analytic)")
    lts.add_argument("--seq-len", type=int, default=192, help="sequence length of the flops proxy")
    lts.set_defaults(func=_lts_logs)


def _lts_logs(args: argparse.Namespace) -> int:
    from pathlib import Path

    import pandas as pd

    from paretolm.analysis.lts_logs import analyze_lts
    from paretolm.core.artifacts import provenance, write_table

    if not Path(args.dir).is_dir():
        raise ValueError(f"dir: {args.dir} is not a directory")
    table = analyze_lts(args.dir, sets=args.sets, proxies=args.proxies, seq_len=args.seq_len)
    cfg = {"sets": args.sets, "proxies": args.proxies, "seq_len": args.seq_len}
    write_table(table, args.out, provenance("analyze-lts-logs", cfg, source_dir=str(args.dir)))
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(table[["set", "proxy", "n", "src", "kendall"]].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    sys.stdout.flush()
    return 0
