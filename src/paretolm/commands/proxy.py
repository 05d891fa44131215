"""``paretolm proxy``: list the registered proxies, score specs, check proxies on NAS-Bench-BERT.

* ``paretolm proxy list``: every proxy with its sign convention and whether it needs data.
* ``paretolm proxy score --proxies merino_entropy,decoder_params --json -``: reads specs as JSON
  lines (a file or ``-`` for stdin) and prints one JSON object per line, ``arch_id`` plus one key
  per proxy, scored by ``paretolm.proxies.Scorer``. Data-dependent proxies need ``--data``: a
  config YAML (its ``proxies.data`` block, or a bare data block with ``dataset``/``tokenizer``) or a
  plain text file (GPT-2 tokens), both read by ``paretolm.data.file_batch``.
* ``paretolm proxy supernet --space config/spaces/gpt2_cpu_ground_truth.yaml --out DIR``: trains
  the weight-sharing supernet that ``supernet_loss`` reads (``paretolm.supernet``) outside the
  workflow, with the train data and ``proxies.settings.supernet_loss`` of ``--config`` (repeatable,
  merged as Snakemake's ``--configfile`` layers); DIR defaults to ``<dir>/<space>``.
* ``paretolm proxy nas-bench-bert <dir>``: Spearman correlations with GLUE of our shape-only
  proxies on all 500 NAS-Bench-BERT encoders, next to those of the published proxy scores
  (``paretolm.analysis.nas_bench_bert``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from paretolm.commands import COMMANDS
from paretolm.commands.jsonlines import each_spec

SIGN = "higher = lower predicted perplexity"


@COMMANDS.register("proxy")
def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("proxy", help="score architectures with training-free proxies")
    sub = parser.add_subparsers(dest="proxy_command", required=True)

    lst = sub.add_parser("list", help="every registered proxy, its sign convention and whether it needs data")
    lst.add_argument("--json", action="store_true", help="one JSON object per proxy instead of a table")
    lst.set_defaults(func=_list)

    score = sub.add_parser("score", help="score specs read as JSON lines")
    score.add_argument("--proxies", required=True, help="comma-separated proxy names (see `proxy list`)")
    score.add_argument("--json", required=True, metavar="FILE", help="JSON-lines file of specs, or - for stdin")
    score.add_argument(
        "--data", default=None, help="config YAML or text file giving the batch for data-dependent proxies"
    )
    score.add_argument("--seq-len", type=int, default=192, help="tokens per sequence (default 192)")
    score.add_argument("--batch-size", type=int, default=8, help="sequences in the batch (default 8)")
    score.add_argument("--seed", type=int, default=0, help="seed of the batch and of model initialisation")
    score.add_argument("--costs", action="store_true", help="also print <proxy>_seconds and <proxy>_flops")
    score.add_argument("--entropy-eps", type=float, default=None, help="eps of merino_entropy (default 1)")
    score.set_defaults(func=_score)

    sn = sub.add_parser("supernet", help="train the weight-sharing supernet of a space (proxy supernet_loss)")
    sn.add_argument("--space", required=True, help="the search space YAML file")
    sn.add_argument(
        "--config",
        action="append",
        default=None,
        help="config YAML (repeatable, later files win; default config/config.yaml)",
    )
    sn.add_argument("--out", default=None, help="output folder (default: proxies.settings.supernet_loss.dir/<space>)")
    sn.add_argument("--steps", type=int, default=None, help="override proxies.settings.supernet_loss.steps")
    sn.add_argument("--quiet", action="store_true", help="no progress bar")
    sn.set_defaults(func=_supernet)

    nb = sub.add_parser("nas-bench-bert", help="SRC with GLUE on NAS-Bench-BERT, ours next to the published")
    nb.add_argument("dir", help="the nas-bench-bert folder (BERT_benchmark.json, BERT_results_activation.csv)")
    nb.add_argument("--out", default=None, help="Parquet file for the per-architecture scores")
    nb.set_defaults(func=_nas_bench_bert)


# -- list --------------------------------------------------------------------------------------
def _list(args: argparse.Namespace) -> int:
    from paretolm.proxies import registry

    rows = [
        {"name": p.name, "needs_data": p.needs_data, "sign": SIGN, "doc": " ".join(p.doc.split())}
        for p in sorted(registry().values(), key=lambda p: (p.needs_data, p.name))
    ]
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    width = max(len(r["name"]) for r in rows)
    print(f"{'proxy':<{width}}  data  sign: {SIGN}")
    for r in rows:
        print(f"{r['name']:<{width}}  {'yes ' if r['needs_data'] else 'no  '}  {r['doc']}")
    return 0


# -- score -------------------------------------------------------------------------------------
def _score(args: argparse.Namespace) -> int:
    from paretolm.proxies import Scorer, get

    names = [n.strip() for n in args.proxies.split(",") if n.strip()]
    if not names:
        raise ValueError("proxies: give at least one proxy name")
    if args.seq_len <= 0 or args.batch_size <= 0:
        raise ValueError("seq-len/batch-size: must be positive")
    need = [n for n in names if get(n).needs_data]
    batch = None
    if need:
        if args.data is None:
            raise ValueError(f"data: proxies {need} need --data (a config YAML or a text file)")
        from paretolm.data import file_batch

        batch = file_batch(args.data, args.batch_size, args.seq_len, args.seed)
    settings = {} if args.entropy_eps is None else {"merino_entropy": {"eps": args.entropy_eps}}
    scorer = Scorer(names, seq_len=args.seq_len, seed=args.seed, batch=batch, settings=settings)

    def score(spec: Any) -> dict[str, Any]:
        row = scorer.row(spec, costs=args.costs)
        return {k: _json_float(v) if k in names else v for k, v in row.items()}

    if args.json == "-":
        return 1 if each_spec(sys.stdin, score) else 0
    with open(args.json) as fh:
        return 1 if each_spec(fh, score) else 0


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


# -- supernet ---------------------------------------------------------------------------------
def _supernet(args: argparse.Namespace) -> int:
    from pathlib import Path

    from paretolm.config import merge, validate_config
    from paretolm.core import yamlfile
    from paretolm.stages import canonical
    from paretolm.stages import supernet as stage

    space_path = Path(args.space)
    if not space_path.is_file():
        raise ValueError(f"space: no search space file {str(space_path)!r}")
    paths = args.config or ["config/config.yaml"]
    config: dict[str, Any] = {}
    for path in paths:
        config = merge(config, yamlfile.load(path) or {})
    if args.steps is not None:
        config = merge(config, {"proxies": {"settings": {"supernet_loss": {"steps": args.steps}}}})
    config = validate_config(config, files=paths)
    part = canonical(stage.part(config, space_path.stem, yamlfile.load(space_path)))
    out = Path(args.out) if args.out else Path(stage.settings(config).dir) / space_path.stem
    meta = stage.run(part, space=space_path.stem, space_file=space_path, out=out, progress=not args.quiet)
    print(
        json.dumps(
            {
                "out": str(out),
                "steps": meta["steps"],
                "train_seconds": round(meta["train_seconds"], 1),
                "final_loss": meta["final_loss"],
            }
        )
    )
    return 0


# -- NAS-Bench-BERT ----------------------------------------------------------------------------
def _nas_bench_bert(args: argparse.Namespace) -> int:
    from paretolm.analysis.nas_bench_bert import load_table, src_with_glue

    table = load_table(args.dir)
    srcs = src_with_glue(table)
    print(
        f"NAS-Bench-BERT: {len(table)} architectures; {int(table['representable'].sum())} exactly "
        "representable by the homogeneous SDP `bert` backbone (data-dependent proxies need that)."
    )
    print("Spearman with GLUE (higher = better proxy):")
    for r in srcs:
        print(f"  {r['proxy']:<26} {r['source']:<9} n={r['n']:<4} {r['src_glue']:+.4f}")
    if args.out:
        from paretolm.core.artifacts import provenance, write_table

        prov = provenance("proxy-nas-bench-bert", {"src": srcs}, source_dir=str(args.dir))
        write_table(table, args.out, prov)
    return 0
