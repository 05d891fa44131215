"""What measuring through ``paretolm serve`` costs over measuring here, on the loopback address.

    python benchmarks/bench_remote.py [--archs 8] [--space gpt2_cpu_small]

The same architectures, sampled from the space, are measured on the ``cpu`` target of the shipped
config twice, side by side in one run: by a ``Profiler`` in this process (local) and by a
``paretolm serve`` process on 127.0.0.1 through the remote source's client (remote), alternating
which goes first. Both start from empty caches, and each side is warmed up on one extra
architecture first (imports, allocator, profiler start-up).

Per candidate, the overhead is the wall-clock time beyond the measurement itself
(``measure_seconds``, timed inside ``profiling.measure`` on whichever side measured): for local
the cache write, for remote also the HTTP round trip, JSON, the server's checks and its cache.
Reported: the remote overhead minus the local one as a percentage of the local wall time (target:
under 5 % per candidate), and the plain ratio of the two wall times, which also holds the run-to-run
noise of the measurements themselves.

Writes ``benchmarks/results/remote.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from paretolm.config import load_measurement_settings  # noqa: E402
from paretolm.core.artifacts import hardware_fingerprint, write_json  # noqa: E402
from paretolm.core.spaces import load_space  # noqa: E402
from paretolm.hardware.profiling import settings_from_params  # noqa: E402
from paretolm.hardware.sources import local_source  # noqa: E402
from paretolm.hardware.sources.remote import remote_source  # noqa: E402


def start_server(cache: Path, token: str) -> tuple[subprocess.Popen, str]:
    cmd = [
        sys.executable,
        "-m",
        "paretolm.cli",
        "serve",
        "--hardware",
        "cpu",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--cache",
        str(cache),
    ]
    env = {**os.environ, "PARETOLM_TOKEN": token, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if " at " not in line:
        proc.kill()
        raise SystemExit(f"paretolm serve did not start: {line!r}")
    return proc, line.split(" at ")[1].strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", type=int, default=8)
    ap.add_argument("--space", default="gpt2_cpu_small")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/remote.json"))
    args = ap.parse_args()

    part = load_measurement_settings(REPO / "config/config.yaml", "cpu", root=REPO)
    settings = settings_from_params(part)
    specs = load_space(args.space, REPO / "config/spaces").sample(args.archs + 1, seed=321)
    token = secrets.token_urlsafe(24)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_server(Path(tmp) / "server", token)
        os.environ["PARETOLM_TOKEN"] = token
        try:
            local = local_source("cpu", settings, Path(tmp) / "local")
            target = {**part["hardware"], "remote": {"url": url}}
            remote = remote_source("cpu", target, settings, Path(tmp) / "client")
            local(specs[0]), remote(specs[0])  # warm-up, not counted
            rows = []
            for i, spec in enumerate(specs[1:]):
                walls = {}
                for side in ("local", "remote") if i % 2 == 0 else ("remote", "local"):
                    source = local if side == "local" else remote
                    t0 = time.perf_counter()
                    result = source(spec)
                    walls[side] = (time.perf_counter() - t0, result["measure_seconds"])
                (lw, lm), (rw, rm) = walls["local"], walls["remote"]
                extra = (rw - rm) - (lw - lm)
                rows.append(
                    {
                        "arch_id": spec.arch_id,
                        "local_wall_s": lw,
                        "local_measure_s": lm,
                        "remote_wall_s": rw,
                        "remote_measure_s": rm,
                        "remote_extra_ms": 1000 * extra,
                        "overhead_pct": 100 * extra / lw,
                        "wall_ratio_pct": 100 * (rw / lw - 1),
                    }
                )
                print(
                    f"{spec.arch_id}: local {lw:.3f} s, remote {rw:.3f} s, "
                    f"remote extra {1000 * extra:.1f} ms ({100 * extra / lw:.2f} %)",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
    out = {
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"fingerprint": hardware_fingerprint(), "python": platform.python_version()},
        "settings": settings.to_dict(),
        "space": args.space,
        "archs": args.archs,
        "median_overhead_pct": statistics.median(r["overhead_pct"] for r in rows),
        "max_overhead_pct": max(r["overhead_pct"] for r in rows),
        "median_remote_extra_ms": statistics.median(r["remote_extra_ms"] for r in rows),
        "median_wall_ratio_pct": statistics.median(r["wall_ratio_pct"] for r in rows),
        "median_local_wall_s": statistics.median(r["local_wall_s"] for r in rows),
        "client_retries": remote.counts().get("retries", 0),
        "load_average_at_start": load_start,
        "load_average_at_end": os.getloadavg(),
        "rows": rows,
    }
    write_json(out, args.out)
    print(
        f"median overhead of remote over local: {out['median_overhead_pct']:.2f} % per candidate "
        f"({out['median_remote_extra_ms']:.1f} ms of {out['median_local_wall_s']:.2f} s); "
        f"wall-time ratio {out['median_wall_ratio_pct']:+.2f} %  -> {args.out}"
    )


if __name__ == "__main__":
    main()
