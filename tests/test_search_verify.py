"""search.measure verify, and resuming a killed search: on the replay device, through the search
stage (``paretolm.stages.search.run``) as the workflow calls it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import TINY_SPACES, tiny_space

from paretolm.config import load_config
from paretolm.core.arch import ArchSpec
from paretolm.core.artifacts import provenance, read_provenance, read_table, write_table
from paretolm.hardware.profiling import Settings
from paretolm.hardware.replay import ReplayDevice
from paretolm.proxies import Scorer
from paretolm.stages import config_part
from paretolm.stages import search as search_stage

SEQ = 16
SPACE = TINY_SPACES["gpt2"]
LTS = {"iterations": 6, "population": 12, "parents": 4, "mutations": 6, "crossovers": 6}

# What a workflow job runs, as a separate process: the search stage with the replay device, slowed
# down so that it can be killed in the middle.
SCRIPT = """
import json, sys
from paretolm.hardware.replay import ReplayDevice
from paretolm.stages import search
job = json.loads(sys.argv[1])
part = json.loads(open(job.pop("part")).read())
device = ReplayDevice(delay_s=job.pop("delay"), log=job.pop("log"))
search.run(part, method=part["search"]["method"], hardware="cpu", measure_fn=device, **job)
"""


def setup(root: Path, measure: str, **search_over) -> dict:
    """A tiny space, its profile table (measured by the replay device) and the search's config part."""
    (root / "spaces").mkdir(parents=True)
    (root / "spaces/tiny.yaml").write_text(yaml.safe_dump(SPACE))
    cfg = load_config(
        overrides={
            "spaces_dir": str(root / "spaces"),
            "sample": {"spaces": ["tiny"], "n": 10},
            "proxies": {"names": ["decoder_params", "total_params", "flops"], "seq_len": SEQ},
            "profile": {"seq_len": SEQ},
            "search": {
                "method": "lts",
                "space": "tiny",
                "measure": measure,
                "lts": LTS,
                # the roofline predictor alone keeps the rounds quick (tests/test_methods.py covers auto)
                "verify": {"initial": 4, "batch": 4, "explore": 1, "predictor": "roofline"},
                **search_over,
            },
        }
    )
    part = config_part("search", cfg, method="lts", hardware="cpu")
    (root / "part.json").write_text(json.dumps(part))
    specs = tiny_space().sample(10, seed=0)
    device = ReplayDevice()
    table = pd.DataFrame([device(s, Settings(seq_len=SEQ)) for s in specs])
    table = table.merge(Scorer.from_part(part["proxies"]).table(specs, costs=False), on="arch_id")
    table.insert(1, "spec", [s.to_json() for s in specs])
    write_table(table, root / "profile.parquet", provenance("profile", {}, []))
    return {"part": part, "profile": root / "profile.parquet", "space_file": root / "spaces/tiny.yaml"}


def job(setup_: dict, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    return {
        "profile": str(setup_["profile"]),
        "space_file": str(setup_["space_file"]),
        "cache_dir": str(out / "cache"),
        "archive": str(out / "archive.parquet"),
        "frontier": str(out / "frontier.parquet"),
        "report": str(out / "report.json"),
    }


def launch(root: Path, setup_: dict, out: Path, delay: float) -> subprocess.Popen:
    args = {**job(setup_, out), "part": str(root / "part.json"), "delay": delay, "log": str(out / "measured.log")}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, json.dumps(args)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def cached(out: Path) -> set[str]:
    return {p.name.split("-")[0] for p in (out / "cache/cpu").glob("*.json")} if (out / "cache/cpu").exists() else set()


def logged(out: Path) -> list[str]:
    path = out / "measured.log"
    return path.read_text().split() if path.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize("measure", ["all", "verify"])
def test_killed_search_resumes_without_measuring_twice_and_ends_the_same(tmp_path: Path, measure: str) -> None:
    s = setup(tmp_path, measure)
    whole = tmp_path / "whole"
    proc = launch(tmp_path, s, whole, delay=0.0)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    total = len(logged(whole))
    assert total == len(cached(whole)) > 8

    cut = tmp_path / "cut"
    proc = launch(tmp_path, s, cut, delay=0.05)
    deadline = time.time() + 240
    while len(cached(cut)) < total // 2:
        assert proc.poll() is None, "the search finished before it could be killed"
        assert time.time() < deadline, "the search never got halfway"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done, before = cached(cut), logged(cut)
    assert total // 2 <= len(done) < total and not (cut / "archive.parquet").exists()

    proc = launch(tmp_path, s, cut, delay=0.0)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    pd.testing.assert_frame_equal(read_table(cut / "archive.parquet"), read_table(whole / "archive.parquet"))
    pd.testing.assert_frame_equal(read_table(cut / "frontier.parquet"), read_table(whole / "frontier.parquet"))
    # nothing measured before the kill was measured again (only one killed between its
    # measurement and its cache entry could be), and the two runs measured exactly the same set
    calls = logged(cut)
    twice = {a for a in calls if calls.count(a) > 1}
    assert twice <= set(before) - done
    assert set(calls) == set(logged(whole)) == cached(cut)
    again = read_provenance(cut / "archive.parquet")["measurements"]
    assert again["cache_hits"] >= len(done) and again["measured"] == total - len(done) + len(twice)


def test_verify_measures_a_fraction_and_keeps_the_frontier(tmp_path: Path) -> None:
    runs = {}
    for measure in ("all", "verify"):
        s = setup(tmp_path / measure, measure, lts={**LTS, "iterations": 10, "population": 20})
        out = tmp_path / measure / "out"
        search_stage.run(
            s["part"],
            method="lts",
            hardware="cpu",
            measure_fn=ReplayDevice(),
            convergence=out / "hypervolume.png",
            plot=out / "frontier.png",
            **{k: v for k, v in job(s, out).items()},
        )
        runs[measure] = json.loads((out / "report.json").read_text())
        assert (out / "hypervolume.png").stat().st_size > 5_000 and (out / "frontier.png").stat().st_size > 5_000
    full, verify = runs["all"], runs["verify"]
    assert verify["reference"] == full["reference"]  # one fixed reference point: the profiled samples'
    assert verify["measurements"]["search"] < 0.6 * full["measurements"]["search"]
    assert verify["hypervolume"] > 0.97 * full["hypervolume"]
    trace = [h for _, h in verify["trace"]]
    assert trace == sorted(trace) and verify["trace"][-1][0] == verify["measurements"]["total"]
    rounds = verify["verify"]["rounds"]
    assert [r["round"] for r in rounds] == list(range(1, len(rounds) + 1)) and verify["verify"]["stopped"]
    held = verify["heldout"]["frontier"]["latency_ms"]
    assert held["n"] >= 1 and 0 < held["mape_pct"] < 30
    archive = read_table(tmp_path / "verify/out/archive.parquet")
    checked = archive[archive["measured"] & archive["latency_ms_predicted"].notna()]
    assert len(checked) == verify["heldout"]["measured"]["latency_ms"]["n"]
    assert (checked["latency_ms_predicted"] != checked["latency_ms"]).all()  # predictions made before


def test_predictions_never_reach_the_frontier_and_rows_say_which_they_are(tmp_path: Path) -> None:
    s = setup(tmp_path, "verify", lts={**LTS, "iterations": 8})
    out = tmp_path / "out"
    front = search_stage.run(s["part"], method="lts", hardware="cpu", measure_fn=ReplayDevice(), **job(s, out))
    archive = read_table(out / "archive.parquet")
    assert front["measured"].all() and (~archive["measured"]).sum() > 0
    device = ReplayDevice()
    for row in archive[archive["measured"]].itertuples():
        again = device(ArchSpec.from_json(row.spec), Settings(seq_len=SEQ))
        assert row.latency_ms == pytest.approx(again["latency_ms"])
    prov = read_provenance(out / "frontier.parquet")
    assert (
        prov["measure"] == "verify"
        and prov["source"] == "injected"
        and prov["wildcards"] == {"method": "lts", "hardware": "cpu"}
    )
