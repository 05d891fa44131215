"""Benchmarks of the MeRino and SpeedLimit methods, written to ``benchmarks/results/``.

Run from the repository root::

    python benchmarks/bench_methods.py [--measure 40] [--search]

1. MeRino evolutionary search: candidates per second, and its best entropy against random sampling
   with the same number of draws, at two budgets.
2. Latency predictor on every HAT latency dataset: fit and predict time, held-out RMSE / MAPE /
   Spearman / Kendall (seeded 80/20 split) next to the params-only baseline.
3. ``--measure N``: int8 (dynamic quantization) CPU latency of N specs sampled from
   ``config/spaces/speedlimit_bert.yaml`` at batch 1, 128 tokens, 1 thread, 5 timed passes after 2
   warm-up passes (saved as a profile table), and the predictor's 5-fold out-of-fold metrics on
   them, for the median and for the minimum of the passes (the machine may be shared: interference
   only adds time, so the minimum is the cleaner target there). ``--search`` then runs a short
   SpeedLimit search with that predictor (fitted on the minima) and real measurements, capped at
   the median of the measured minima.

Results: ``benchmarks/results/methods.json`` (+ ``speedlimit_bert_cpu_int8.parquet``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def bench_merino(iterations: int, seed: int) -> list[dict]:
    from paretolm.core.spaces import load_space
    from paretolm.search.methods.merino import merino_search, random_search

    space = load_space(ROOT / "config" / "spaces" / "merino.yaml")
    merino_search(space, iterations=50, population=8, max_flops=1e10)  # warm caches and imports
    out = []
    for budget in ({"max_flops": 2e10}, {"max_params": 2e7}):
        r = merino_search(space, iterations=iterations, population=512, seed=seed, **budget)
        draws = r.stats["candidates"] + r.stats["duplicates"]
        t0 = time.perf_counter()
        base = random_search(space, draws, seed=seed, **budget)
        out.append(
            {
                "budget": budget,
                "iterations": iterations,
                "population": 512,
                "candidates": r.stats["candidates"],
                "duplicates": r.stats["duplicates"],
                "feasible": r.stats["feasible"],
                "seconds": r.stats["seconds"],
                "candidates_per_second": r.stats["candidates_per_second"],
                "best_entropy": r.best_score,
                "best_spec": r.best.to_json(),
                "random_best_entropy": base.best_score,
                "random_seconds": time.perf_counter() - t0,
            }
        )
        print(
            f"merino {budget}: {out[-1]['candidates_per_second']:.0f} cand/s, best {r.best_score:.0f} "
            f"vs random {base.best_score:.0f}",
            flush=True,
        )
    return out


def bench_hat(data: Path, seed: int) -> list[dict]:
    import numpy as np

    from paretolm.hardware.predictors.mlp import LatencyPredictor, evaluate, params_only_baseline, read_hat, split

    rows = []
    for csv in sorted((data / "ground-truth" / "hat-latency").glob("*_all.csv")):
        X, y = read_hat(csv)
        train, test = split(len(y), 0.2, seed)
        t0 = time.perf_counter()
        pred = LatencyPredictor(seed=seed).fit(X.iloc[train], y.iloc[train])
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        p = pred.predict(X.iloc[test])
        predict_s = time.perf_counter() - t0
        base = params_only_baseline(X.iloc[train], y.iloc[train], X.iloc[test], seed=seed)
        m, b = evaluate(y.iloc[test], p), evaluate(y.iloc[test], base)
        rows.append(
            {
                "dataset": csv.name.removesuffix("_all.csv"),
                "train_rows": len(train),
                "fit_seconds": fit_s,
                "predict_us_per_row": 1e6 * predict_s / len(test),
                "latency_ms_median": float(np.median(y)),
                **{f"predictor_{k}": v for k, v in m.items()},
                **{f"params_only_{k}": v for k, v in b.items() if k != "n"},
            }
        )
        print(
            f"hat {rows[-1]['dataset']}: MAPE {m['mape_pct']:.2f}% (params-only {b['mape_pct']:.2f}%), "
            f"Spearman {m['spearman']:.3f} ({b['spearman']:.3f})",
            flush=True,
        )
    return rows


def bench_measured(n: int, seed: int, search: bool) -> dict:
    import numpy as np

    from paretolm.core.artifacts import provenance, write_table
    from paretolm.core.spaces import load_space
    from paretolm.hardware.predictors.mlp import cross_validate, default_hidden, fit_profile, profile_features
    from paretolm.search.methods.speedlimit import int8_measure_fn, measure_table, speedlimit_search

    space_path = ROOT / "config" / "spaces" / "speedlimit_bert.yaml"
    space = load_space(space_path)
    settings = {"seq_len": 128, "batch": 1, "threads": 1, "warmup": 2, "repeats": 5}
    specs = space.sample(n, seed=seed)
    t0 = time.perf_counter()
    table = measure_table(specs, **settings)
    measure_s = time.perf_counter() - t0
    write_table(
        table,
        RESULTS / "speedlimit_bert_cpu_int8.parquet",
        provenance(
            "profile",
            {"hardware": {"device": "cpu", "quantize": "dynamic_int8"}, "profile": settings, "seed": seed, "n": n},
            [space_path],
        ),
    )
    X = profile_features(table, 128)
    cv: dict = {}
    for target in ("latency_min_ms", "latency_ms"):
        for model, kw in (("mlp", {}), ("log_linear", {"hidden": ()})):
            m = cross_validate(X, table[target], folds=5, seed=seed, **kw)
            cv[f"{target}/{model}"] = m
            print(
                f"int8 {target} {model}: 5-fold MAPE {m['predictor']['mape_pct']:.2f}% (params-only "
                f"{m['params_only']['mape_pct']:.2f}%), Spearman {m['predictor']['spearman']:.3f} "
                f"({m['params_only']['spearman']:.3f})",
                flush=True,
            )
    out = {
        "n": n,
        "settings": settings,
        "measure_seconds": measure_s,
        "latency_ms": {k: float(getattr(table["latency_ms"], k)()) for k in ("min", "median", "max")},
        "rel_iqr_median": float(np.median(table["latency_iqr_ms"] / table["latency_ms"])),
        "cv": cv,
    }
    if search:
        fit_on = table.assign(latency_ms=table["latency_min_ms"])
        pred = fit_profile(fit_on, 128, seed=seed, hidden=default_hidden(len(fit_on)))
        cap = float(fit_on["latency_ms"].median())
        r = speedlimit_search(
            space,
            pred,
            cap,
            int8_measure_fn("min", **settings),
            "merino_entropy",
            population=6,
            iterations=2,
            parents=3,
            mutations=3,
            crossovers=1,
            seed=seed,
        )
        a = r.archive
        measured = a[a["latency_ms"].notna()]
        out["search"] = {
            "cap_ms": cap,
            **{k: v for k, v in r.stats.items() if k != "config"},
            "best_spec": r.best.to_json() if r.best else None,
            "best_score": r.best_score,
            "measured_feasible_fraction": float(measured["feasible"].mean()),
            "best_random_init_score": float(a.loc[(a["iteration"] == 0) & a["feasible"], "score"].max()),
        }
        print(f"speedlimit search: {r.stats}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("--measure", type=int, default=0, help="int8-measure this many bert specs")
    parser.add_argument("--search", action="store_true", help="also run a short real SpeedLimit search")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "methods.json"))
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT / "src"))
    import torch

    from paretolm.core.artifacts import code_version, hardware_fingerprint, write_json

    load = os.getloadavg()[0]
    torch.set_num_threads(1)
    data = Path(os.environ.get("PARETOLM_DATA", "../shared/data"))
    result = {
        "code": code_version(),
        "hardware": hardware_fingerprint(),
        "torch_threads": 1,
        "load_average_1min_at_start": load,
        "merino": bench_merino(args.iterations, args.seed),
        "hat": bench_hat(data, args.seed),
    }
    if args.measure:
        result["speedlimit_bert_int8"] = bench_measured(args.measure, args.seed, args.search)
    write_json(result, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
