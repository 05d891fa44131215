"""Cost of the proxies on one CPU thread.

* MeRino entropy, fast path (Marchenko-Pastur closed form): specs per second over random specs of
  each space, with the per-shape cache warm (the steady state of a search) and cold; exact path
  (Monte-Carlo SVD, one draw per shape) on a few specs, and the speed-up.
* Data-dependent proxies: seconds and counted FLOPs per proxy per architecture on the default
  space ``config/spaces/gpt2_cpu_small.yaml`` with a batch of real text (WikiText-2 validation,
  GPT-2 tokens).

Usage: ``python benchmarks/bench_proxies.py [--archs 5] [--batch-size 8] [--seq-len 192]``; writes
``benchmarks/results/proxies.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from pathlib import Path

import torch

from paretolm.core.artifacts import atomic_path
from paretolm.core.spaces import SearchSpace
from paretolm.data import text_batch
from paretolm.proxies import entropy
from paretolm.proxies.entropy import EntropySettings, network_entropy
from paretolm.proxies.zero_cost import DATA_PROXIES, run_data_proxy

ROOT = Path(__file__).resolve().parent.parent
SPACES = ["gpt2_cpu_small", "lts_gpt2", "lts_transformer_xl", "merino", "opt_350m", "par", "speedlimit_bert"]


def sample_specs(space: str, n: int, seed: int = 0) -> list:
    sp = SearchSpace.from_yaml(ROOT / "config" / "spaces" / f"{space}.yaml")
    rng, out = random.Random(seed), []
    while len(out) < n:
        try:
            out.append(sp.decode(sp.random_genome(rng)))
        except ValueError:
            continue
    return out


def bench_entropy(n: int, n_exact: int) -> dict:
    res = {}
    for space in SPACES:
        specs = sample_specs(space, n)
        entropy.clear_caches()
        t0 = time.perf_counter()
        for s in specs:
            network_entropy(s)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        for s in specs:
            network_entropy(s)
        warm = time.perf_counter() - t0
        exact_cfg = EntropySettings(method="svd", samples=1)
        t0 = time.perf_counter()
        for s in specs[:n_exact]:
            network_entropy(s, exact_cfg)
        exact = (time.perf_counter() - t0) / n_exact
        res[space] = {
            "specs": n,
            "specs_per_s_warm": n / warm,
            "specs_per_s_cold": n / cold,
            "exact_svd_s_per_spec": exact,
            "speedup_warm_vs_svd": exact / (warm / n),
        }
        print(
            f"entropy {space:<20} warm {n / warm:>10,.0f}/s  cold {n / cold:>9,.0f}/s  "
            f"SVD {exact:.3f} s/spec  speed-up x{exact / (warm / n):,.0f}",
            flush=True,
        )
    return res


def bench_data(n_archs: int, batch_size: int, seq_len: int) -> dict:
    text = ROOT.parent / "shared" / "data" / "corpora" / "wikitext-2" / "valid.txt"
    batch = text_batch(text, batch_size, seq_len, seed=0)
    specs = sample_specs("gpt2_cpu_small", n_archs, seed=1)
    per: dict[str, dict] = {}
    for name in DATA_PROXIES:
        secs, flops = [], []
        for s in specs:
            t0 = time.perf_counter()
            _, f = run_data_proxy(name, s, batch, seed=0)
            secs.append(time.perf_counter() - t0)
            flops.append(f)
        per[name] = {
            "median_s": statistics.median(secs),
            "mean_s": statistics.fmean(secs),
            "max_s": max(secs),
            "median_flops": statistics.median(flops),
        }
        print(
            f"{name:<14} median {per[name]['median_s']:.2f} s/arch  max {max(secs):.2f} s  "
            f"median {per[name]['median_flops']:.3g} FLOPs",
            flush=True,
        )
    return {
        "space": "gpt2_cpu_small",
        "archs": n_archs,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "data": "wikitext-2 valid.txt, GPT-2 tokens",
        "proxies": per,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", type=int, default=5000)
    ap.add_argument("--exact", type=int, default=3, help="specs timed on the exact SVD path per space")
    ap.add_argument("--archs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=192)
    ap.add_argument("--skip-data", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "proxies.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    result = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "processor": platform.processor() or platform.machine(),
            "threads": 1,
        },
        "entropy": bench_entropy(args.specs, args.exact),
    }
    if not args.skip_data:
        result["data_proxies"] = bench_data(args.archs, args.batch_size, args.seq_len)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
