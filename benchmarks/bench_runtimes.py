"""Prefill and decode latency of the same architectures on every CPU runtime, side by side.

    python benchmarks/bench_runtimes.py [--space gpt2_cpu_small|llama_cpu_small] [--archs 12]
                                        [--threads 1] [--clock wall|cpu]

Architectures are drawn (seeded) from the space (default ``gpt2_cpu_small``). Each is measured
by ``paretolm.hardware.profiling.measure`` on every CPU runtime: ``torch`` float32, ``torch_int8``
(dynamic int8 ``nn.Linear``), ``onnxruntime`` float32 and int8 (dynamic int8 weights), and, for a
``llama`` space, ``executorch`` float32 and int8 (XNNPACK) and ``llamacpp`` float32, q8_0 and q4_0
(llama.cpp's own timings); the default profile protocol (batch 1, 192-token prefill; decode of 16
tokens after 176, with the cache), warm-up 3, 10-40 timed repeats (until IQR / median <= 0.05), one thread. Runtimes are
interleaved per architecture so that drift in the machine's load hits all of them alike, and
``torch`` float32 is measured a second time last (``torch_again``): its agreement with the first
measurement is the noise floor the other rank correlations are read against. ``--clock cpu`` times
the process's CPU time instead of elapsed time (``profile.clock``), which other work on a shared
machine barely changes.

Per latency kind, once with the median over repeats (the profile protocol's statistic) and once
with the fastest repeat (the least disturbed by other work on a shared machine), it reports each
runtime's median latency over the architectures and its speed-up over ``torch`` float32 (median
of the per-architecture ratios), the Spearman and Kendall rank correlations between every pair of
runtimes' latencies, and whether the (``decoder_params`` maximised, latency minimised) Pareto
frontier, the default search's objectives, changes with the runtime. Writes
``benchmarks/results/runtimes.json``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from paretolm.core.artifacts import hardware_fingerprint, write_json  # noqa: E402
from paretolm.core.counting import count  # noqa: E402
from paretolm.core.pareto import pareto_front  # noqa: E402
from paretolm.core.spaces import load_space  # noqa: E402
from paretolm.hardware import profiling  # noqa: E402
from paretolm.hardware.runtimes import get as get_runtime  # noqa: E402

# (runtime, dtype, label); torch measured again last: the noise floor
RUNTIMES = [
    ("torch", "float32", "torch"),
    ("torch_int8", "float32", "torch_int8"),
    ("onnxruntime", "float32", "onnxruntime"),
    ("onnxruntime", "int8", "onnxruntime_int8"),
]
LLAMA_RUNTIMES = [
    ("executorch", "float32", "executorch"),
    ("executorch", "int8", "executorch_int8"),
    ("llamacpp", "float32", "llamacpp"),
    ("llamacpp", "q8_0", "llamacpp_q8_0"),
    ("llamacpp", "q4_0", "llamacpp_q4_0"),
]
AGAIN = ("torch", "float32", "torch_again")


def runtimes_for(space: str) -> list[tuple[str, str, str]]:
    backbone = load_space(space, REPO / "config/spaces").backbone
    return [*RUNTIMES, *(LLAMA_RUNTIMES if backbone == "llama" else []), AGAIN]


# latency kind -> statistic -> column: the median over repeats (the protocol's) and the fastest
# repeat, which other work on a shared machine disturbs least
KINDS = {
    "prefill": {"median": "prefill_ms", "min": "prefill_min_ms"},
    "decode": {"median": "decode_ms_per_token", "min": "decode_min_ms_per_token"},
}
PROXY = "decoder_params"


def measure_all(space_name: str, n_archs: int, threads: int, clock: str) -> pd.DataFrame:
    space = load_space(space_name, REPO / "config/spaces")
    specs = space.sample(n_archs, seed=2024)
    base = dict(
        threads=threads,
        batch=1,
        seq_len=192,
        decode_tokens=16,
        warmup=3,
        min_repeats=10,
        max_repeats=40,
        rel_iqr_max=0.05,
        memory=False,
        clock=clock,
    )
    profiling.measure(specs[0], profiling.Settings(**base))  # process warm-up, not recorded
    rows = []
    for i, spec in enumerate(specs):
        for runtime, dtype, name in runtimes_for(space_name):
            r = profiling.measure(spec, profiling.Settings(runtime=runtime, dtype=dtype, **base))
            rows.append(
                {
                    "arch": i,
                    "runtime": name,
                    PROXY: count(spec, 192).decoder_params,
                    "spec": spec.to_json(),
                    **{
                        k: r[k]
                        for k in (
                            "prefill_ms",
                            "prefill_iqr_ms",
                            "prefill_min_ms",
                            "prefill_repeats",
                            "decode_ms_per_token",
                            "decode_iqr_ms",
                            "decode_min_ms_per_token",
                            "decode_repeats",
                            "weights_mb",
                            "check_error",
                            "measure_seconds",
                        )
                    },
                }
            )
            print(
                f"arch {i} {name:>17}: prefill {r['prefill_ms']:7.2f} ms, "
                f"decode {r['decode_ms_per_token']:6.3f} ms/token, {r['weights_mb']:6.1f} MB",
                flush=True,
            )
    return pd.DataFrame(rows)


def compare(df: pd.DataFrame, col: str, labels: list[str]) -> dict:
    """Per-runtime medians and speed-ups, pairwise rank correlations and Pareto frontiers of one
    latency column."""
    wide = df.pivot(index="arch", columns="runtime", values=col)[labels]
    base = wide["torch"]
    per_runtime = {
        name: {
            "median_ms": float(wide[name].median()),
            "min_ms": float(wide[name].min()),
            "max_ms": float(wide[name].max()),
            "speedup_vs_torch": float((base / wide[name]).median()),
        }
        for name in labels
    }
    pairs = {}
    for a, b in itertools.combinations(labels, 2):
        pairs[f"{a} vs {b}"] = {
            "spearman": float(stats.spearmanr(wide[a], wide[b]).statistic),
            "kendall": float(stats.kendalltau(wide[a], wide[b]).statistic),
        }
    proxy = df.drop_duplicates("arch").set_index("arch")[PROXY]
    fronts = {}
    for name in labels:
        table = pd.DataFrame({PROXY: proxy, "latency": wide[name]}).reset_index()
        fronts[name] = sorted(int(a) for a in pareto_front(table, {PROXY: "max", "latency": "min"})["arch"])
    ref = set(fronts["torch"])
    changes = {
        name: {"frontier": f, "same_as_torch": set(f) == ref, "jaccard_vs_torch": len(ref & set(f)) / len(ref | set(f))}
        for name, f in fronts.items()
    }
    return {"column": col, "runtimes": per_runtime, "rank_correlation": pairs, "frontiers": changes}


def summarise(df: pd.DataFrame, space: str) -> dict:
    labels = [name for _, _, name in runtimes_for(space)]
    return {kind: {stat: compare(df, col, labels) for stat, col in cols.items()} for kind, cols in KINDS.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="gpt2_cpu_small")
    ap.add_argument("--archs", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    ap.add_argument("--out", default=None, help="default: benchmarks/results/runtimes[_cpu_clock].json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    df = measure_all(args.space, args.archs, args.threads, args.clock)
    summary = summarise(df, args.space)
    result = {
        "command": f"python benchmarks/bench_runtimes.py --space {args.space} --archs {args.archs} "
        f"--threads {args.threads} --clock {args.clock}",
        "machine": hardware_fingerprint(),
        "versions": {
            k: v
            for name in {r for r, _, _ in runtimes_for(args.space)}
            for k, v in get_runtime(name).versions().items()
        },
        "protocol": {
            "space": args.space,
            "archs": args.archs,
            "threads": args.threads,
            "batch": 1,
            "clock": args.clock,
            "prefill_tokens": 192,
            "context": 176,
            "decode_tokens": 16,
            "warmup": 3,
            "repeats": "10-40 (until IQR/median <= 0.05)",
            "statistic": "median over repeats",
            "frontier_objectives": {PROXY: "max", "latency": "min"},
        },
        "summary": summary,
        "rows": df.to_dict(orient="records"),
        "seconds": time.perf_counter() - t0,
        # other processes on the machine: 1-minute load average before and after the run
        "load_average": {"before": load_before[0], "after": os.getloadavg()[0], "cpus": os.cpu_count()},
    }
    suffix = "" if args.space == "gpt2_cpu_small" else "_" + args.space.split("_")[0]
    out = args.out or REPO / "benchmarks/results" / (
        f"runtimes{suffix}.json" if args.clock == "wall" else f"runtimes{suffix}_cpu_clock.json"
    )
    write_json(result, out)
    for kind, by_stat in summary.items():
        for stat, part in by_stat.items():
            print(f"\n{kind} ({stat} over repeats): median over architectures (speed-up vs torch)")
            for name, v in part["runtimes"].items():
                print(f"  {name:>17}: {v['median_ms']:8.3f} ms  ({v['speedup_vs_torch']:.2f}x)")
            for pair, v in part["rank_correlation"].items():
                print(f"  {pair}: Spearman {v['spearman']:.3f}, Kendall {v['kendall']:.3f}")
            for name, v in part["frontiers"].items():
                print(f"  frontier {name}: {v['frontier']} (same as torch: {v['same_as_torch']})")
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
