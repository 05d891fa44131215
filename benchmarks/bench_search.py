"""Search at a tenth of the cost? LTS's search measured everywhere (``all``) against ``verify``,
and random search at verify's measurement budget, side by side in one run on this machine.

    python benchmarks/bench_search.py [--iterations 30 --population 100] [--clock cpu] [--replay] [--remeasure 40]
    python benchmarks/bench_search.py ... --recheck-only

Setup: the shipped config (space ``gpt2_cpu_small``, target ``cpu``, its profile settings and
proxies) with LTS's settings (``search.lts``: 30 iterations x population 100, 20 parents, 40
mutations at p = 0.3, 40 crossovers), seed 0. The profile stage (``sample.n`` architectures) runs
once; all three searches start from its table. Each search has a measurement cache of its own, so
none reuses another's measurements; its wall time is the search stage's (the profile stage's is
reported once, beside them).

1. ``all``: LTS as published, every candidate measured.
2. ``verify``: the same method and seed, ``search.measure: verify`` with the schema's settings.
3. ``random``: ``search.method: random`` with as many candidates as verify made measurements
   (profile stage included), every one measured.

For each: measurements (profile, search), wall time, frontier size, the hypervolume of the
measured frontier against one fixed reference point (``search.reference`` unset: 10 % of the
range beyond the worst profiled value of each objective; the same for the three) and its ratio
to ``all``'s, and for verify the predictor's held-out MAPE and Kendall tau on the final
frontier's measured points. Then:

* ``--remeasure N``: N random frontier points of each run measured again, fresh (no cache). A
  frontier picked from many noisy measurements keeps the lucky ones (winner's curse), so its
  points measure slower the second time; this says by how much for each run.
* active sampling: on ``all``'s measured archive as a pool, the predictor (``auto``) trained on
  k points chosen at random or by ``predictors.active_order``, MAPE on the rest, k = 16..128.

``--recheck-only`` then measures every frontier point of the saved runs again, fresh, the runs'
points shuffled together so that all see the same machine, and compares the frontiers'
hypervolumes on those numbers (on the replay device: on its latencies without noise).

``--replay`` runs the same on ``paretolm.hardware.replay.ReplayDevice`` (no model is built; minutes) to
check the logic; the headline figures come from the real CPU. Writes
``benchmarks/results/search.json`` (``search_replay.json``), the hypervolume figure
``search_hypervolume.png`` and each run's archive (``search_<mode>_archive.parquet``). Work
folder and caches: ``results/bench_search/`` (a killed run resumes from its caches).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
sys.path.insert(0, str(REPO / "src"))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def config(args: argparse.Namespace) -> dict[str, Any]:
    from paretolm.config import load_config

    lts = {
        "iterations": args.iterations,
        "population": args.population,
        "parents": 20,
        "mutations": 40,
        "mutation_prob": 0.3,
        "crossovers": 40,
    }
    over: dict[str, Any] = {"search": {"lts": lts, "seed": args.seed}}
    if args.clock:
        over["profile"] = {"clock": args.clock}
    return load_config(REPO / "config/config.yaml", over, root=REPO)


def profile(cfg: dict[str, Any], work: Path, measure_fn: Any) -> tuple[Path, float]:
    """The sample, proxies and profile stages into ``work``; the profile table and its seconds."""
    from paretolm.config import space_file
    from paretolm.hardware.profiling import Profiler, settings_from_params
    from paretolm.hardware.sources import ProfilerSource
    from paretolm.stages import config_part, stage

    space = cfg["search"]["space"]
    samples, proxies = work / f"samples/{space}.parquet", work / f"proxies/{space}.parquet"
    out = work / f"profile/cpu/{space}.parquet"
    if out.exists():
        from paretolm.core.artifacts import read_provenance

        return out, float(read_provenance(out)["seconds"])
    stage("sample").run(
        config_part("sample", cfg, space=space), space=space, space_file=REPO / space_file(cfg, space), out=samples
    )
    stage("proxies").run(config_part("proxies", cfg, space=space), space=space, samples=samples, out=proxies)
    part = config_part("profile", cfg, hardware="cpu", space=space)
    t0 = time.perf_counter()
    if measure_fn is None:
        stage("profile").run(
            part,
            hardware="cpu",
            space=space,
            samples=samples,
            proxies=proxies,
            cache_dir=work / "cache/profile",
            out=out,
        )
    else:  # the same table, measured by the stand-in device
        import pandas as pd

        from paretolm.core.arch import ArchSpec
        from paretolm.core.artifacts import provenance, read_table, write_table

        source = ProfilerSource(
            "injected", Profiler("cpu", settings_from_params(part), work / "cache/profile", measure_fn=measure_fn)
        )
        sample_df = read_table(samples)
        meas = pd.DataFrame([source(ArchSpec.from_json(s)) for s in sample_df["spec"]])
        df = meas.merge(read_table(proxies), on="arch_id")
        df = df[[c for c in df.columns if not c.endswith("_seconds")]]
        df.insert(1, "spec", sample_df["spec"].to_numpy())
        write_table(df, out, provenance("profile", part, [samples, proxies], seconds=time.perf_counter() - t0))
    return out, time.perf_counter() - t0


def search(
    cfg: dict[str, Any], method: str, measure: str, work: Path, profile_table: Path, measure_fn: Any, **block: Any
) -> dict[str, Any]:
    from paretolm.config import merge, method_space, space_file
    from paretolm.stages import config_part
    from paretolm.stages import search as search_stage

    name = f"{method}_{measure}"
    over: dict[str, Any] = {"search": {"method": method, "measure": measure}}
    if block:
        over["search"][method] = block
    c = merge(cfg, over)
    part = config_part("search", c, method=method, hardware="cpu")
    folder = work / name
    t0 = time.perf_counter()
    search_stage.run(
        part,
        method=method,
        hardware="cpu",
        profile=profile_table,
        space_file=REPO / space_file(c, method_space(c, method)),
        cache_dir=work / f"cache/{name}",
        frontier=folder / "frontier.parquet",
        archive=folder / "archive.parquet",
        report=folder / "report.json",
        plot=folder / "frontier.png",
        convergence=folder / "hypervolume.png",
        measure_fn=measure_fn,
    )
    report = json.loads((folder / "report.json").read_text())
    report["wall_seconds"] = time.perf_counter() - t0
    return report


def remeasure(archive_path: Path, n: int, seed: int, measure_fn: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    """``n`` random frontier points measured again without the cache: the latency ratio."""
    import numpy as np

    from paretolm.core.arch import ArchSpec
    from paretolm.core.artifacts import read_table
    from paretolm.hardware.profiling import measure, settings_from_params
    from paretolm.stages import config_part

    front = read_table(archive_path)
    front = front[front["on_front"]].reset_index(drop=True)
    rows = random.Random(seed).sample(range(len(front)), min(n, len(front)))
    settings = settings_from_params(config_part("profile", cfg, hardware="cpu", space=cfg["search"]["space"]))
    fn = measure_fn or measure
    ratios = []
    for i in rows:
        again = fn(ArchSpec.from_json(front.at[i, "spec"]), settings)
        ratios.append(float(again["latency_ms"]) / float(front.at[i, "latency_ms"]))
    r = np.asarray(ratios)
    return {
        "n": len(r),
        "mean_ratio": float(r.mean()),
        "median_ratio": float(np.median(r)),
        "share_slower": float((r > 1).mean()),
    }


def recheck(
    archives: dict[str, Path], cfg: dict[str, Any], reference: dict[str, float], seed: int, measure_fn: Any
) -> dict[str, Any]:
    """Every frontier point of every run measured again, fresh, the runs' points interleaved so
    that all see the same machine; then each frontier's hypervolume with these latencies (its
    points kept, the dominated ones dropped) and its ratio to ``all``'s. Unlike the as-measured
    comparison this one neither rewards the lucky measurements a frontier picked from many (the
    winner's curse) nor the quieter hour one run had."""
    import numpy as np

    from paretolm.core import pareto
    from paretolm.core.arch import ArchSpec
    from paretolm.core.artifacts import read_table
    from paretolm.hardware.profiling import measure, settings_from_params
    from paretolm.search.methods import objectives_of
    from paretolm.stages import config_part

    settings = settings_from_params(config_part("profile", cfg, hardware="cpu", space=cfg["search"]["space"]))
    fn = measure_fn or measure
    fronts = {m: read_table(p).query("on_front").reset_index(drop=True) for m, p in archives.items()}
    order = [(m, i) for i in range(max(len(f) for f in fronts.values())) for m in fronts if i < len(fronts[m])]
    random.Random(seed).shuffle(order)
    again: dict[str, dict[int, float]] = {m: {} for m in fronts}
    t0 = time.perf_counter()
    for k, (m, i) in enumerate(order):
        again[m][i] = float(fn(ArchSpec.from_json(fronts[m].at[i, "spec"]), settings)["latency_ms"])
        if k % 50 == 0:
            log(f"recheck {k}/{len(order)}")
    objectives = objectives_of(cfg["search"])
    out: dict[str, Any] = {"seconds": time.perf_counter() - t0, "points": len(order)}
    for m, front in fronts.items():
        fresh = front.copy()
        fresh["latency_ms"] = [again[m][i] for i in range(len(front))]
        ratio = fresh["latency_ms"].to_numpy() / front["latency_ms"].to_numpy()
        out[m] = {
            "n": len(front),
            "latency_ratio_median": float(np.median(ratio)),
            "hypervolume": pareto.hypervolume_of(pareto.pareto_front(fresh, objectives), objectives, reference),
        }
    if "all" in out:
        for m in fronts:
            out[m]["hypervolume_ratio_to_all"] = out[m]["hypervolume"] / out["all"]["hypervolume"]
    return out


def active_sampling(archive_path: Path, seq_len: int, seed: int) -> list[dict[str, Any]]:
    """Predictor MAPE on the rest of ``all``'s measured archive after training on k points chosen
    at random or by active sampling."""
    import numpy as np

    from paretolm.core.arch import ArchSpec
    from paretolm.core.artifacts import read_table
    from paretolm.hardware.predictors.committee import active_order, fit

    table = read_table(archive_path)
    table = table[table["measured"]].reset_index(drop=True)
    specs = [ArchSpec.from_json(s) for s in table["spec"]]
    out = []
    for k in (16, 32, 64, 128):
        row: dict[str, Any] = {"k": k}
        choices = {
            "random": random.Random(seed).sample(range(len(specs)), k),
            "active": active_order(specs, [], k, seq_len),
        }
        for how, picked in choices.items():
            rest = np.setdiff1d(np.arange(len(specs)), picked)
            model = fit([specs[i] for i in picked], table.iloc[picked], seq_len, targets=("latency_ms",), seed=seed)
            pred = model.predict([specs[i] for i in rest])["latency_ms"].to_numpy()
            truth = table["latency_ms"].to_numpy(dtype=float)[rest]
            row[f"{how}_mape_pct"] = float(100 * np.mean(np.abs(pred - truth) / truth))
            row[f"{how}_kind"] = model.models["latency_ms"].kind
        out.append(row)
        log(f"active sampling k={k}: {row}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--population", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--replay", action="store_true", help="the stand-in device instead of the CPU")
    ap.add_argument("--remeasure", type=int, default=40, help="frontier points of each run measured again")
    ap.add_argument("--modes", default="verify,random,all", help="runs, in order")
    ap.add_argument(
        "--recheck-only",
        action="store_true",
        help="only measure the frontiers of the saved runs again (benchmarks/results/search.json)",
    )
    ap.add_argument(
        "--clock",
        default=None,
        choices=("wall", "cpu"),
        help="profile.clock (default: the shipped config's); cpu on a machine busy with other work",
    )
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from paretolm.core.artifacts import hardware_fingerprint, write_json
    from paretolm.hardware.replay import ReplayDevice
    from paretolm.search.figures import hypervolume_figure

    tag = "search_replay" if args.replay else "search"
    work = REPO / "results" / "bench_search" / ("replay" if args.replay else f"cpu-{args.iterations}x{args.population}")
    measure_fn = ReplayDevice() if args.replay else None
    cfg = config(args)
    if args.recheck_only:
        import json as _json

        saved = _json.loads((RESULTS / f"{tag}.json").read_text())
        archives = {m: RESULTS / f"{tag}_{m}_archive.parquet" for m in saved["summary"]}
        # on the stand-in device the check measures without its noise: the true latencies
        truth = ReplayDevice(noise=0.0) if args.replay else None
        saved["recheck"] = recheck(archives, cfg, saved["reference"], args.seed, truth)
        saved["recheck"]["command"] = "python benchmarks/bench_search.py " + " ".join(sys.argv[1:])
        write_json(saved, RESULTS / f"{tag}.json")
        print(json.dumps(saved["recheck"], indent=1))
        return 0
    t0 = time.perf_counter()
    table, profile_seconds = profile(cfg, work, measure_fn)
    log(f"profile stage: {cfg['sample']['n']} architectures, {profile_seconds:.0f} s")
    runs: dict[str, dict[str, Any]] = {}
    for mode in args.modes.split(","):
        if mode == "random":
            budget = runs["verify"]["measurements"]["total"]
            runs["random"] = search(cfg, "random", "all", work, table, measure_fn, candidates=budget)
        else:
            runs[mode] = search(cfg, "lts", mode, work, table, measure_fn)
        r = runs[mode]
        log(
            f"{mode}: {r['measurements']['search']} search measurements, {r['wall_seconds']:.0f} s, "
            f"frontier {r['frontier']}, hypervolume {r['hypervolume']:.6g}"
        )
    base = runs.get("all")
    summary = {}
    for mode, r in runs.items():
        s = {
            "measurements_profile": r["measurements"]["profile"],
            "measurements_search": r["measurements"]["search"],
            "measurements_total": r["measurements"]["total"],
            "fresh_measurements": r["measurements"].get("measured"),
            "wall_seconds": r["wall_seconds"],
            "frontier": r["frontier"],
            "candidates": r["candidates"],
            "hypervolume": r["hypervolume"],
        }
        if base:
            s["hypervolume_ratio_to_all"] = r["hypervolume"] / base["hypervolume"]
            s["fewer_measurements_than_all"] = base["measurements"]["search"] / max(1, r["measurements"]["search"])
            s["less_wall_time_than_all"] = base["wall_seconds"] / r["wall_seconds"]
        if "heldout" in r:
            s["heldout_frontier"] = r["heldout"]["frontier"]
            s["heldout_measured"] = r["heldout"]["measured"]
            s["rounds"] = len(r["verify"]["rounds"])
            s["stopped"] = r["verify"]["stopped"]
            s["predictor"] = r["verify"]["predictor"]
        summary[mode] = s
    out: dict[str, Any] = {
        "command": "python benchmarks/bench_search.py " + " ".join(sys.argv[1:]),
        "device": "replay (paretolm.hardware.replay.ReplayDevice)" if args.replay else "cpu (this machine, 1 thread)",
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_end": os.getloadavg(),
            "fingerprint": hardware_fingerprint(),
        },
        "settings": {
            "space": cfg["search"]["space"],
            "lts": cfg["search"]["lts"],
            "seed": args.seed,
            "verify": cfg["search"]["verify"],
            "profile": cfg["profile"],
            "sample_n": cfg["sample"]["n"],
        },
        "reference": next(iter(runs.values()))["reference"],
        "profile_stage_seconds": profile_seconds,
        "summary": summary,
        "runs": {m: {k: v for k, v in r.items() if k != "trace"} for m, r in runs.items()},
        "traces": {m: r["trace"] for m, r in runs.items()},
    }
    if args.remeasure and "all" in runs:
        out["remeasured_frontier"] = {
            m: remeasure(
                work / ("lts_" + m if m != "random" else "random_all") / "archive.parquet",
                args.remeasure,
                args.seed,
                measure_fn,
                cfg,
            )
            for m in runs
        }
        log(f"remeasured: {out['remeasured_frontier']}")
    if "all" in runs:
        out["active_sampling"] = active_sampling(
            work / "lts_all/archive.parquet", int(cfg["profile"]["seq_len"]), args.seed
        )
    out["total_seconds"] = time.perf_counter() - t0
    write_json(out, RESULTS / f"{tag}.json")
    hypervolume_figure(
        {m: r["trace"] for m, r in runs.items()},
        RESULTS / f"{tag}_hypervolume.png",
        title=f"LTS {args.iterations} x {args.population} on {cfg['search']['space']}, "
        f"{'replay device' if args.replay else 'cpu'}",
    )
    import shutil

    for m in runs:
        folder = "random_all" if m == "random" else f"lts_{m}"
        shutil.copy(work / folder / "archive.parquet", RESULTS / f"{tag}_{m}_archive.parquet")
    print(json.dumps(summary, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
