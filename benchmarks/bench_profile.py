"""Cost of measuring: profiling overhead per architecture, a cache hit, and the default run.

    python benchmarks/bench_profile.py [--archs 6] [--skip-workflow]

1. **Overhead.** For architectures sampled from the default space, ``profiling.measure`` with
   the default config's settings on the ``cpu`` target, timed from outside, against the bare
   forward passes it contains (the same number of warm-up, timed and memory passes, run in a
   plain loop on the same model). Overhead = measure / bare - 1 (target: under 30 %).
2. **Cache hit.** Seconds for a ``Profiler`` to return an already-cached measurement.
3. **Default run.** ``snakemake --cores all results/pareto_cpu.parquet`` with the shipped
   config in a fresh copy of the workflow (empty results and cache), wall-clock seconds.

Writes ``benchmarks/results/bench_profile.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from paretolm import config  # noqa: E402
from paretolm.core.artifacts import hardware_fingerprint, read_provenance, read_table, write_json  # noqa: E402
from paretolm.core.spaces import load_space  # noqa: E402
from paretolm.hardware import profiling  # noqa: E402


def bare_seconds(spec, s: profiling.Settings, passes: int) -> float:
    import torch

    model = profiling.prepare_model(spec, s)
    ids = torch.randint(0, spec.vocab_size, (s.batch, s.seq_len), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        model(ids)  # not counted: first-call setup is part of warm-up in both
        t0 = time.perf_counter()
        for _ in range(passes):
            model(ids)
        return time.perf_counter() - t0


def overhead(n_archs: int, cfg: dict) -> dict:
    part = config.measurement_settings(cfg, "cpu")
    s = profiling.Settings.from_parts(part["hardware"], part["profile"])
    space = load_space(cfg["search"]["space"], REPO / cfg["spaces_dir"])
    specs = space.sample(n_archs, seed=123)
    profiling.measure(specs[0], s)  # process warm-up (imports, allocator, profiler start-up)
    rows = []
    for spec in specs:
        t0 = time.perf_counter()
        r = profiling.measure(spec, s)
        total = time.perf_counter() - t0
        passes = s.warmup + r["repeats"] + (1 if s.memory else 0)
        bare = bare_seconds(spec, s, passes)
        rows.append(
            {
                "arch_id": spec.arch_id,
                "n_layer": spec.n_layer,
                "d_model": spec.d_model,
                "latency_ms": r["latency_ms"],
                "latency_iqr_ms": r["latency_iqr_ms"],
                "repeats": r["repeats"],
                "passes": passes,
                "profile_seconds": total,
                "bare_forward_seconds": bare,
                "overhead": total / bare - 1,
            }
        )
    tot = sum(r["profile_seconds"] for r in rows)
    bare = sum(r["bare_forward_seconds"] for r in rows)
    return {
        "settings": s.to_dict(),
        "per_arch": rows,
        "profile_seconds_per_arch": tot / len(rows),
        "bare_forward_seconds_per_arch": bare / len(rows),
        "overhead": tot / bare - 1,
    }


def cache_hit(cfg: dict, n: int = 200) -> dict:
    part = config.measurement_settings(cfg, "cpu")
    s = profiling.Settings.from_parts(part["hardware"], part["profile"])
    space = load_space(cfg["search"]["space"], REPO / cfg["spaces_dir"])
    spec = space.sample(1, seed=7)[0]
    with tempfile.TemporaryDirectory() as tmp:
        p = profiling.Profiler("cpu", s, tmp)
        t0 = time.perf_counter()
        p(spec)
        miss = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(n):
            p(spec)
        hit = (time.perf_counter() - t0) / n
    return {"miss_seconds": miss, "hit_seconds": hit, "hits_timed": n}


def default_run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp)
        for name in ("workflow", "config"):
            src = REPO / name
            (shutil.copytree if src.is_dir() else shutil.copy)(src, wd / name)
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "snakemake", "--cores", "all", "results/pareto_cpu.parquet"]
        proc = subprocess.run(cmd, cwd=wd, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"default run failed:\n{proc.stderr[-4000:]}")
        front = read_table(wd / "results/pareto_cpu.parquet")
        archive = read_table(wd / "results/search/cpu/archive.parquet")
        prov = read_provenance(wd / "results/search/cpu/archive.parquet")
        prof_prov = read_provenance(wd / "results/profile/cpu/gpt2_cpu_small.parquet")
        shutil.copy(wd / "results/pareto_cpu.png", REPO / "benchmarks/results/default_pareto_cpu.png")
        return {
            "seconds": seconds,
            "archive": len(archive),
            "frontier": len(front),
            "search_measurements": prov["measurements"],
            "search_rejected": prov["rejected"],
            "profile_stage_seconds": prof_prov.get("seconds"),
            "search_stage_seconds": prov.get("seconds"),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=6)
    ap.add_argument("--skip-workflow", action="store_true")
    args = ap.parse_args()
    cfg = config.load_config(REPO / "config/config.yaml", root=REPO)
    cfg["spaces_dir"] = str(REPO / cfg["spaces_dir"])
    out = {
        "machine": hardware_fingerprint(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out["overhead"] = overhead(args.archs, cfg)
    print(
        f"overhead: {out['overhead']['overhead']:.1%} ({out['overhead']['profile_seconds_per_arch']:.2f} s "
        f"per arch vs {out['overhead']['bare_forward_seconds_per_arch']:.2f} s of forward passes)"
    )
    out["cache"] = cache_hit(cfg)
    cache = out["cache"]
    print(f"cache hit: {cache['hit_seconds'] * 1e3:.2f} ms (miss {cache['miss_seconds']:.2f} s)")
    if not args.skip_workflow:
        out["default_run"] = default_run()
        print(f"default run: {out['default_run']['seconds']:.0f} s, {out['default_run']}")
    out["load_average_at_end"] = os.getloadavg()
    path = REPO / "benchmarks/results/bench_profile.json"
    write_json(out, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
