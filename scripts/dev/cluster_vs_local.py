"""Wall time of the cluster tests' search config through profiles/slurm against a local run of it.

    sudo scripts/dev/slurm.sh up
    python scripts/dev/cluster_vs_local.py [--out figures.json]

Runs the config of tests/test_cluster.py (two targets routed to partitions arm and gpu, 4 samples,
1 search iteration) three times on this machine, each in a fresh folder with an empty measurement
cache: through the SLURM profile with the status checks the tests use, through the profile as
shipped (the plugin's own status-check timing), and locally with `snakemake --cores <nproc>`.
Prints the jobs submitted, each run's wall time and the seconds the jobs themselves ran (sacct).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))  # the tests' config and helpers, so the figures are of the tested run

import test_cluster as tc  # noqa: E402


def elapsed_seconds(job: dict) -> float:
    """Seconds between a job's start and end, from sacct's timestamps."""
    from datetime import datetime

    start, end = (datetime.fromisoformat(job[k]) for k in ("Start", "End"))
    return (end - start).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()

    figures = {"machine": {"cores": os.cpu_count(), "load_average_before": os.getloadavg()}}
    with tempfile.TemporaryDirectory(prefix="cluster-vs-local-") as tmp:
        root = Path(tmp)
        runs = {
            "cluster (status checks every few seconds, as in the tests)": tc.on_cluster(fast=True),
            "cluster (profile as shipped)": tc.on_cluster(fast=False),
            "local": [*tc.SNAKEMAKE, "--cores", str(os.cpu_count())],
        }
        for i, (name, command) in enumerate(runs.items()):
            config = tc.cluster_config(profile={"cache": str(root / f"cache{i}")})
            workdir = tc.make_workdir(root / f"run{i}", config)
            proc, seconds = tc.run(workdir, command, timeout=1200)
            text = tc.check(proc)
            # command is [python, -m, snakemake, ...]: shown as typed, from `snakemake` on
            entry = {"command": " ".join(["snakemake", *command[3:]]), "wall_seconds": round(seconds, 1)}
            if "cluster" in name:
                jobs = tc.jobs_of_run(tc.run_id(text))
                entry["jobs_submitted"] = len(jobs)
                entry["jobs"] = {"_".join([tc.rule_of(j)[0], *tc.rule_of(j)[1]]): elapsed_seconds(j) for j in jobs}
                entry["job_seconds_total"] = sum(entry["jobs"].values())
            figures[name] = entry
            print(f"{name}: {json.dumps(entry)}", flush=True)
    figures["machine"]["load_average_after"] = os.getloadavg()
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
