"""Analytic counting vs instantiating models: archs/s and the speed-up, on one core.

Samples 100,000 specs (a fixed mix of the LTS GPT-2, LTS Transformer-XL and OPT-350M spaces),
times ``paretolm.core.counting.count`` over all of them (median of ``--repeats`` runs), then times
building each model and summing ``numel()`` for a sample of the specs (on CPU, as a search loop
without this module would, and on the meta device as the cheapest possible instantiation), checks
the counts agree, and writes ``benchmarks/results/counting.json``.

    python benchmarks/bench_counting.py [--n 100000] [--n-build 50] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
MIX = {"lts_gpt2": 0.4, "lts_transformer_xl": 0.4, "opt_350m": 0.2}


def sample_specs(n: int, seed: int) -> list:
    from paretolm.core.spaces import load_space

    specs = []
    for i, (name, share) in enumerate(MIX.items()):
        k = n - len(specs) if i == len(MIX) - 1 else int(round(n * share))
        specs += load_space(ROOT / "config" / "spaces" / f"{name}.yaml").sample(k, seed=seed + i)
    return specs


def time_counting(specs: list, seq_len: int, repeats: int) -> tuple[list[float], list]:
    from paretolm.core.counting import count

    count(specs[0], seq_len)  # registers the counters
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = [count(s, seq_len) for s in specs]
        times.append(time.perf_counter() - t0)
    return times, out


def time_building(specs: list, device: str) -> list[float]:
    import torch

    from paretolm.models import build_model

    times = []
    for spec in specs:
        t0 = time.perf_counter()
        with torch.device(device):
            model = build_model(spec)
        n = sum(p.numel() for p in model.parameters())
        times.append(time.perf_counter() - t0)
        del model
        assert n > 0
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--n-build", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seq-len", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "counting.json")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from paretolm.core.artifacts import atomic_path, code_version
    from paretolm.core.counting import count

    t0 = time.perf_counter()
    specs = sample_specs(args.n, args.seed)
    sample_s = time.perf_counter() - t0
    count_times, counts = time_counting(specs, args.seq_len, args.repeats)
    count_median = statistics.median(count_times)

    step = max(1, len(specs) // args.n_build)
    build_specs = specs[::step][: args.n_build]
    cpu_times = time_building(build_specs, "cpu")
    meta_times = time_building(build_specs, "meta")
    # the counts being timed are the models' own
    for spec in build_specs[:10]:
        with torch.device("meta"):
            from paretolm.models import build_model

            model = build_model(spec)
        assert count(spec).total_params == sum(p.numel() for p in model.parameters())

    per_count = count_median / len(specs)
    per_cpu = statistics.median(cpu_times)
    per_meta = statistics.median(meta_times)
    result = {
        "n_specs": len(specs),
        "space_mix": MIX,
        "seq_len": args.seq_len,
        "sampling_s": round(sample_s, 3),
        "count_total_s_median": round(count_median, 4),
        "count_total_s_runs": [round(t, 4) for t in count_times],
        "count_archs_per_s": round(len(specs) / count_median),
        "count_us_per_arch": round(per_count * 1e6, 3),
        "build_n": len(build_specs),
        "build_cpu_s_per_arch_median": round(per_cpu, 4),
        "build_cpu_archs_per_s": round(1 / per_cpu, 3),
        "build_meta_s_per_arch_median": round(per_meta, 5),
        "build_meta_archs_per_s": round(1 / per_meta, 2),
        "speedup_vs_cpu_build": round(per_cpu / per_count),
        "speedup_vs_meta_build": round(per_meta / per_count),
        "target_100k_under_2s": count_median * 100_000 / len(specs) < 2.0,
        "target_1000x": per_cpu / per_count >= 1000,
        "threads": 1,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "code": code_version(),
        "command": "python benchmarks/bench_counting.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
    }
    del counts
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
