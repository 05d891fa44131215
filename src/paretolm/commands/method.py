"""``paretolm merino`` and ``paretolm speedlimit``: the MeRino and SpeedLimit methods.

* ``paretolm merino search --space config/spaces/merino.yaml --max-flops 2e10 [--max-params ...]
  [--iterations ...] [--seed ...] [--out archive.parquet]``: MeRino's evolutionary search; prints
  the best architecture and run statistics as JSON, writes the archive with provenance.
* ``paretolm speedlimit fit-predictor --profile <parquet> --out predictor.safetensors``: fit the
  latency predictor on a profile table (``spec``, ``latency_ms``) and print its held-out metrics.
* ``paretolm speedlimit evaluate-hat <csv> ...``: held-out metrics on HAT latency datasets, next to
  a params-only baseline; ``--out`` writes them as a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from paretolm.commands import COMMANDS


@COMMANDS.register("merino")
def register_merino(subparsers: argparse._SubParsersAction) -> None:
    merino = subparsers.add_parser("merino", help="MeRino: entropy-maximising search under budgets")
    msub = merino.add_subparsers(dest="merino_command", required=True)
    s = msub.add_parser("search", help="evolutionary search maximising a proxy under FLOPs/params budgets")
    s.add_argument("--space", default="config/spaces/merino.yaml", help="search space YAML")
    s.add_argument("--max-flops", type=float, default=None, help="forward FLOPs budget at --seq-len")
    s.add_argument("--max-params", type=float, default=None, help="parameter budget (see --param-field)")
    s.add_argument("--param-field", default="total_params", choices=("total_params", "decoder_params"))
    s.add_argument("--iterations", type=int, default=10_000, help="evolution steps T")
    s.add_argument("--population", type=int, default=512, help="population size N (MeRino: 512)")
    s.add_argument("--init-samples", type=int, default=64, help="random draws seeding the population")
    s.add_argument("--parent-selection", default="random", choices=("random", "tournament"))
    s.add_argument("--tournament-size", type=int, default=8)
    s.add_argument("--crossover-prob", type=float, default=0.0)
    s.add_argument("--proxy", default="merino_entropy", help="registered analytic proxy to maximise")
    s.add_argument("--seq-len", type=int, default=192, help="sequence length of the FLOPs count")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default=None, help="Parquet archive to write (atomically, with provenance)")
    s.set_defaults(func=_merino_search)


@COMMANDS.register("speedlimit")
def register_speedlimit(subparsers: argparse._SubParsersAction) -> None:
    sl = subparsers.add_parser("speedlimit", help="SpeedLimit: latency predictor, int8 latency cap")
    ssub = sl.add_subparsers(dest="speedlimit_command", required=True)
    f = ssub.add_parser("fit-predictor", help="fit the latency predictor on a profile table")
    f.add_argument("--profile", required=True, help="Parquet with spec (JSON) and latency_ms columns")
    f.add_argument("--out", required=True, help="predictor file to write (safetensors)")
    f.add_argument(
        "--seq-len",
        type=int,
        default=None,
        help="sequence length of the FLOPs feature (default: the profile's provenance, else 192)",
    )
    f.add_argument("--test-fraction", type=float, default=0.2, help="held-out share for the metrics")
    f.add_argument("--folds", type=int, default=0, help="k-fold metrics instead of one split (small tables)")
    f.add_argument(
        "--hidden",
        default="auto",
        help="hidden layer widths, e.g. 32,32; 'linear' for none; auto: MLP from 200 rows up",
    )
    f.add_argument("--seed", type=int, default=0)
    f.set_defaults(func=_fit_predictor)

    h = ssub.add_parser("evaluate-hat", help="held-out predictor metrics on HAT latency CSVs")
    h.add_argument("csv", nargs="+", help="HAT {task}_{device}_all.csv files")
    h.add_argument("--test-fraction", type=float, default=0.2)
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--out", default=None, help="Parquet table of the metrics (with provenance)")
    h.set_defaults(func=_evaluate_hat)


def _merino_search(args: argparse.Namespace) -> int:
    from paretolm.core.artifacts import provenance, write_table
    from paretolm.core.spaces import load_space
    from paretolm.search.methods.merino import merino_search

    space = load_space(args.space)
    result = merino_search(
        space,
        proxy=args.proxy,
        iterations=args.iterations,
        population=args.population,
        init_samples=args.init_samples,
        parent_selection=args.parent_selection,
        tournament_size=args.tournament_size,
        crossover_prob=args.crossover_prob,
        max_flops=args.max_flops,
        max_params=args.max_params,
        param_field=args.param_field,
        seq_len=args.seq_len,
        seed=args.seed,
    )
    cfg = dict(result.stats["config"], space=space.name, proxy=args.proxy)
    if args.out:
        inputs = [args.space] if Path(args.space).exists() else []
        write_table(
            result.archive,
            args.out,
            provenance("merino-search", cfg, inputs, stats={k: v for k, v in result.stats.items() if k != "config"}),
        )
    best_row = result.archive.loc[result.archive["arch_id"] == result.best.arch_id].iloc[0]
    report = {
        "best": {
            "arch_id": result.best.arch_id,
            "spec": json.loads(result.best.to_json()),
            "score": result.best_score,
            "flops": int(best_row["flops"]),
            "params": int(best_row["params"]),
        },
        "stats": {k: v for k, v in result.stats.items() if k != "config"},
    }
    print(json.dumps(report, indent=2))
    sys.stdout.flush()
    return 0


def _fit_predictor(args: argparse.Namespace) -> int:
    from paretolm.core.artifacts import file_hash, read_provenance, read_table
    from paretolm.hardware.predictors.mlp import cross_validate, default_hidden, fit_profile, holdout, profile_features

    path = Path(args.profile)
    if not path.exists():
        raise ValueError(f"profile: no such file {args.profile!r}")
    df = read_table(path)
    for col in ("spec", "latency_ms"):
        if col not in df.columns:
            raise ValueError(f"profile: {args.profile} has no {col!r} column")
    df = df[df["latency_ms"].notna()].reset_index(drop=True)
    seq_len = args.seq_len
    if seq_len is None:
        prov = read_provenance(path) or {}
        seq_len = int(((prov.get("config") or {}).get("profile") or {}).get("seq_len", 192))
    X = profile_features(df, seq_len)
    y = df["latency_ms"].astype(float)
    if args.hidden == "auto":
        hidden = default_hidden(len(df))
    elif args.hidden == "linear":
        hidden = ()
    else:
        try:
            hidden = tuple(int(h) for h in args.hidden.split(","))
        except ValueError:
            raise ValueError(f"hidden: widths like 32,32, 'linear' or 'auto', got {args.hidden!r}") from None
    if args.folds:
        metrics = cross_validate(X, y, folds=args.folds, seed=args.seed, hidden=hidden)
    else:
        metrics = holdout(X, y, test_fraction=args.test_fraction, seed=args.seed, hidden=hidden)
    pred = fit_profile(df, seq_len, seed=args.seed, hidden=hidden)  # the saved predictor uses every row
    pred.meta.update(source=path.name, source_hash=file_hash(path), heldout=metrics)
    pred.save(args.out)
    print(
        json.dumps(
            {"out": args.out, "rows": len(df), "seq_len": seq_len, "hidden": list(hidden), "metrics": metrics}, indent=2
        )
    )
    return 0


def _evaluate_hat(args: argparse.Namespace) -> int:
    import pandas as pd

    from paretolm.core.artifacts import provenance, write_table
    from paretolm.hardware.predictors.mlp import holdout, read_hat

    rows = []
    for csv in args.csv:
        if not Path(csv).exists():
            raise ValueError(f"csv: no such file {csv!r}")
        X, y = read_hat(csv)
        m = holdout(X, y, test_fraction=args.test_fraction, seed=args.seed)
        dataset = Path(csv).name.removesuffix("_all.csv")
        for model in ("predictor", "params_only"):
            rows.append({"dataset": dataset, "model": model, **m[model]})
    table = pd.DataFrame(rows)
    if args.out:
        cfg = {"test_fraction": args.test_fraction, "seed": args.seed}
        write_table(table, args.out, provenance("speedlimit-evaluate-hat", cfg, args.csv))
    with pd.option_context("display.width", 200):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0
