"""profiles/slurm on a real SLURM cluster: the search DAG submitted through the profile, and faults.

These tests need a running SLURM with accounting: ``scripts/dev/slurm.sh up`` starts a one-node
cluster on this machine (partitions cpu, arm and gpu, account ``paretolm``), and ``.ci/run`` does so
before the tests and stops it after. Without ``sbatch``/``sacct`` they skip, or fail under
``PARETOLM_REQUIRE_DATA=1`` as in CI.

Each test copies the workflow into a temporary folder with a tiny space and config, runs
``snakemake --workflow-profile profiles/slurm`` there, as a user would, and checks what SLURM's
accounting recorded. Tiny configs keep every job to seconds; for the same reason the plugin checks
job states every few seconds (``--slurm-init-seconds-before-status-checks 1``), which changes
nothing else.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import data_required, needs_executable
from test_workflow import TINY_SPACE

from paretolm import config as configuration
from paretolm.core.artifacts import read_provenance, read_table

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles/slurm"
ACCOUNT = "paretolm"  # the account scripts/dev/slurm.sh creates

pytestmark = [pytest.mark.cluster, pytest.mark.slow, needs_executable("sbatch", "sacct", "scontrol", "squeue")]

# Targets that stand for an ARM and a GPU partition. The test node serves every partition and is
# an x86 machine without a GPU, so all of them measure on its CPU (no `arch`, device cpu); what is
# tested is where their jobs go: `arm` to partition arm, constrained to a feature of the node, with
# two threads (if the node has two cores); `gpu` to partition gpu with one `gpu` GRES; `cpu` to the
# default partition.
TARGETS = {
    "arm": {
        "device": "cpu",
        "threads": min(2, os.cpu_count() or 1),
        "arch": None,
        "resources": {"mem_mb": 2500, "runtime": 15},
        "slurm": {"partition": "arm", "constraint": platform.machine(), "gres": None},
    },
    "gpu": {
        "device": "cpu",
        "threads": 1,
        "resources": {"mem_mb": 2000, "runtime": 12},
        "slurm": {"partition": "gpu", "constraint": None, "gres": "gpu:1"},
    },
    "cpu": {
        "device": "cpu",
        "threads": 1,
        "resources": {"mem_mb": 1500, "runtime": 10},
        "slurm": {"partition": None, "constraint": None, "gres": None},
    },
}


def cluster_config(**overrides) -> dict:
    """The shipped config with a tiny space, search and measurement, and the test targets."""
    with open(REPO / "config/config.yaml") as fh:
        shipped = yaml.safe_load(fh)
    tiny = {
        "targets": ["arm", "gpu"],
        "spaces_dir": "config/spaces",
        "sample": {"spaces": ["tiny"], "n": 4, "seed": 0},
        "proxies": {"names": ["decoder_params", "total_params", "flops"], "seq_len": 16},
        "profile": {"batch": 1, "seq_len": 16, "warmup": 1, "min_repeats": 10, "max_repeats": 10, "rel_iqr_max": 0.5},
        "hardware": TARGETS,
        "search": {
            "method": "lts",
            "space": "tiny",
            "seed": 0,
            "lts": {"iterations": 1, "population": 4, "parents": 2, "mutations": 2, "crossovers": 2},
        },
    }
    return configuration.merge(configuration.merge(shipped, tiny), overrides)


def make_workdir(path: Path, config: dict) -> Path:
    """A copy of the workflow with the tiny space and ``config`` as config/config.yaml."""
    shutil.copytree(REPO / "workflow", path / "workflow")
    (path / "config/spaces").mkdir(parents=True)
    (path / "config/spaces/tiny.yaml").write_text(yaml.safe_dump(TINY_SPACE))
    (path / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def edit_config(workdir: Path, change: Callable[[dict], None]):
    path = workdir / "config/config.yaml"
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


# -- running Snakemake ----------------------------------------------------------------------------
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# The plugin first checks job states 40 s after a submission and then less and less often while
# nothing finishes: right for jobs of hours, slow for jobs of seconds.
FAST_STATUS = ["--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1"]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def on_cluster(*args: str, fast: bool = True) -> list[str]:
    """The command line of a run through the SLURM profile, as a user types it."""
    return [*SNAKEMAKE, "--workflow-profile", str(PROFILE), *(FAST_STATUS if fast else []), *args]


def run(workdir: Path, command: list[str], timeout: int = 420) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``command`` in ``workdir``; the finished process and its wall time in seconds."""
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=workdir, env=ENV, capture_output=True, text=True, timeout=timeout)
    return proc, time.perf_counter() - start


def text_of(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


def check(proc: subprocess.CompletedProcess) -> str:
    """The output of a run that must have succeeded."""
    text = text_of(proc)
    assert proc.returncode == 0, f"{proc.args} failed:\n{text[-6000:]}"
    return text


def run_id(text: str) -> str:
    """The SLURM run ID Snakemake prints at the start: every job of the run has it as job name."""
    found = re.search(r"SLURM run ID: (\S+)", text)
    assert found, f"no SLURM run ID in:\n{text[-3000:]}"
    return found.group(1)


def start(workdir: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    """A cluster run in the background, in a process group of its own, writing to a file."""
    log = workdir / "snakemake.out"
    proc = subprocess.Popen(
        on_cluster(*args), cwd=workdir, env=ENV, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    return proc, log


def kill(proc: subprocess.Popen):
    """Kill a background run outright (as when the login session dies)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def wait_until(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    """Poll ``predicate`` until it returns something true, and return that; fail naming ``what``
    after ``timeout`` seconds, or at once when ``proc`` (the run being watched) has ended."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(
                f"snakemake ended (exit {proc.returncode}) before {what}:\n{log.read_text()[-4000:] if log else ''}"
            )
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}:\n{log.read_text()[-4000:] if log else ''}")


def started_run(proc: subprocess.Popen, log: Path) -> str:
    """The SLURM run ID of a background run, once it has printed it."""
    return wait_until(
        lambda: (m := re.search(r"SLURM run ID: (\S+)", log.read_text())) and m.group(1),
        120,
        "the run to start",
        proc,
        log,
    )


# -- asking SLURM ---------------------------------------------------------------------------------
def slurm(*args: str) -> str:
    return subprocess.run(list(args), capture_output=True, text=True, check=True, timeout=60).stdout


SACCT_FIELDS = (
    "JobID",
    "JobName",
    "Comment",
    "Account",
    "Partition",
    "ReqCPUS",
    "ReqMem",
    "Timelimit",
    "Constraints",
    "AllocTRES",
    "State",
    "Start",
    "End",
)


def jobs_of_run(run: str) -> list[dict]:
    """Every job of a Snakemake run as SLURM's accounting recorded it (job names are the run ID)."""
    since = (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    out = slurm(
        "sacct", "-X", "--parsable2", "--noheader", "--name", run, "-S", since, "--format", ",".join(SACCT_FIELDS)
    )
    return [dict(zip(SACCT_FIELDS, line.split("|"), strict=True)) for line in out.splitlines() if line]


def queued(run: str) -> list[dict]:
    """Jobs of a run still pending or running: id, state and the reason a pending one waits."""
    out = slurm("squeue", "-h", "--name", run, "-o", "%i|%T|%r")
    return [dict(zip(("JobID", "State", "Reason"), line.split("|"), strict=True)) for line in out.splitlines()]


def rule_of(job: dict) -> tuple[str, list[str]]:
    """(rule, wildcard values) from the comment the plugin gives each job:
    rule_<rule>[_wildcards_<value>_<value>...]."""
    rule, _, wildcards = job["Comment"].removeprefix("rule_").partition("_wildcards_")
    return rule, wildcards.split("_") if wildcards else []


def minutes(limit: str) -> int:
    """sacct's Timelimit ([D-]HH:MM:SS) in minutes."""
    days, _, clock = limit.rpartition("-")
    h, m, s = (int(x) for x in clock.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + (1 if s else 0)


def default_partition() -> str:
    return next(p.rstrip("*") for p in slurm("sinfo", "-h", "-o", "%P").split() if p.endswith("*"))


def node_name() -> str:
    return slurm("sinfo", "-h", "-o", "%n").split()[0]


def drained(node: str) -> bool:
    return "drain" in slurm("sinfo", "-h", "-n", node, "-o", "%t")


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """A controller must answer (sbatch and sacct on PATH are not enough)."""
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if ping.returncode != 0 or "UP" not in ping.stdout:
        message = (
            f"no SLURM controller answers ({ping.stdout.strip() or ping.stderr.strip()}); "
            "start the test cluster with `sudo scripts/dev/slurm.sh up`"
        )
        if data_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def asked_for(job: dict, config: dict) -> dict:
    """What the config's hardware target (measuring rules) or the profile (the others) asks SLURM
    for a job: partition (None: the cluster's default), threads, memory (MB), runtime (minutes),
    constraint, gres."""
    rule, wildcards = rule_of(job)
    target = next((w for w in wildcards if w in config["hardware"]), None)
    if rule in ("profile", "profile_shard", "search"):
        hw = config["hardware"][target]
        return {
            "partition": hw["slurm"]["partition"],
            "threads": hw["threads"],
            "mem_mb": hw["resources"]["mem_mb"],
            "runtime": hw["resources"]["runtime"],
            "constraint": hw["slurm"]["constraint"],
            "gres": hw["slurm"]["gres"],
        }
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    resources = {**profile["default-resources"], **profile["set-resources"].get(rule, {})}
    return {
        "partition": resources.get("slurm_partition"),
        "threads": profile["set-threads"].get(rule, 1),
        "mem_mb": resources["mem_mb"],
        "runtime": resources["runtime"],
        "constraint": None,
        "gres": None,
    }


def tables(workdir: Path) -> dict[str, pd.DataFrame]:
    """Every table a run wrote under results/, by path, without the columns of seconds a step
    took (a cost, different on every run)."""
    found = {}
    for path in sorted((workdir / "results").rglob("*.parquet")):
        table = read_table(path)
        found[str(path.relative_to(workdir))] = table.drop(columns=[c for c in table if c.endswith("_seconds")])
    return found


# -- the search DAG on the cluster, against a local run -------------------------------------------
def test_search_dag_on_cluster_lands_where_asked_and_matches_a_local_run(tmp_path):
    cache = tmp_path / "measurements"  # shared by both runs, as on a cluster's shared filesystem
    config = cluster_config(profile={"cache": str(cache)})
    on_slurm = make_workdir(tmp_path / "cluster", config)
    here = make_workdir(tmp_path / "local", config)

    proc, cluster_seconds = run(on_slurm, on_cluster())
    text = check(proc)
    jobs = jobs_of_run(run_id(text))

    # Every job Snakemake submitted ("rule ...", not "localrule ...") is in the accounting:
    # proxies, and a profile and a search job per target; sample ran on the submit host.
    started = re.findall(r"^(local)?rule (\w+):", text, re.MULTILINE)
    assert sorted(rule_of(j)[0] for j in jobs) == sorted(rule for local, rule in started if not local), jobs
    assert ("local", "sample") in started and len(re.findall("has been submitted with SLURM jobid", text)) == len(jobs)
    for hw in config["targets"]:
        assert {rule for rule, wildcards in map(rule_of, jobs) if hw in wildcards} >= {"profile", "search"}, jobs
    assert "proxies" in [rule_of(j)[0] for j in jobs]
    # Each finished where the profile and the hardware target sent it, with what they asked for.
    for job in jobs:
        want = asked_for(job, config)
        assert job["State"] == "COMPLETED", job
        assert job["Partition"] == (want["partition"] or default_partition()), job
        assert int(job["ReqCPUS"]) == want["threads"], job
        assert job["ReqMem"] == f"{want['mem_mb']}M", job
        assert minutes(job["Timelimit"]) == want["runtime"], job
        assert job["Constraints"] == (want["constraint"] or ""), job
        assert ("gres/gpu=1" in job["AllocTRES"]) == (want["gres"] == "gpu:1"), job
    assert not queued(run_id(text))

    # The same config run here, with the measurement cache the cluster jobs filled: the same
    # samples, proxies, measurements, archives and frontiers.
    proc, local_seconds = run(here, [*SNAKEMAKE, "--cores", "2"])
    check(proc)
    print(
        f"\ncluster run: {len(jobs)} jobs submitted, {cluster_seconds:.0f} s; "
        f"local run of the same config, measurements from the cluster's cache: {local_seconds:.0f} s"
    )
    cluster_tables, local_tables = tables(on_slurm), tables(here)
    assert list(cluster_tables) == list(local_tables)
    assert {f"results/pareto_{hw}.parquet" for hw in config["targets"]} <= set(cluster_tables)
    for path, table in cluster_tables.items():
        pd.testing.assert_frame_equal(table, local_tables[path], obj=path)
    for hw in config["targets"]:
        measured = read_provenance(on_slurm / f"results/profile/{hw}/tiny.parquet")["measurements"]
        assert (measured["measured"], measured["cache_hits"]) == (4, 0)  # measured on the cluster
        reread = read_provenance(here / f"results/profile/{hw}/tiny.parquet")["measurements"]
        assert (reread["measured"], reread["cache_hits"]) == (0, 4)


# -- faults ---------------------------------------------------------------------------------------
N_FAULT = 16  # enough architectures that a profile job measures for a while
PROFILED = "results/profile/cpu/tiny.parquet"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A workdir for target cpu whose samples and proxies were made locally (seconds), so that a
    fault test submits only the jobs it is about."""
    config = cluster_config(targets=["cpu"], sample={"n": N_FAULT}, profile={"min_repeats": 20, "max_repeats": 20})
    workdir = make_workdir(tmp_path_factory.mktemp("prepared"), config)
    check(run(workdir, [*SNAKEMAKE, "--cores", "2", "results/proxies/tiny.parquet"])[0])
    return workdir


def copy_of(prepared: Path, path: Path) -> Path:
    shutil.copytree(prepared, path)
    return path


def cached(workdir: Path) -> int:
    """Measurements in the workdir's cache for target cpu."""
    return len(list((workdir / "results/cache/measurements/cpu").glob("*.json")))


def test_sharded_profile_waits_out_a_drained_node_and_a_shard_cancelled_midway_is_retried(prepared, tmp_path):
    wd = copy_of(prepared, tmp_path / "wd")
    edit_config(wd, lambda c: c["profile"].update(shards=2))  # two profile_shard jobs, then a gathering one
    node = node_name()
    slurm("scontrol", "update", f"NodeName={node}", "State=DRAIN", "Reason=paretolm cluster test")
    proc, log = start(wd, PROFILED, "--default-resources", f"slurm_account={ACCOUNT}")
    try:
        # Drained: both shards are submitted and wait in the queue, and the run waits with them.
        this_run = started_run(proc, log)
        waiting = wait_until(
            lambda: len(queued(this_run)) == 2 and queued(this_run), 120, "two queued shards", proc, log
        )
        time.sleep(3)
        assert [j["State"] for j in queued(this_run)] == ["PENDING"] * 2, waiting
        assert all(re.search(r"ReqNodeNotAvail|DRAIN|Nodes required", j["Reason"]) for j in waiting), waiting
        assert proc.poll() is None
        slurm("scontrol", "update", f"NodeName={node}", "State=RESUME")

        # Resumed: a shard runs; cancelled midway, the run submits it again (retries: 1).
        wait_until(lambda: cached(wd) >= 3, 180, "three measurements in the cache", proc, log)
        slurm("scancel", next(j["JobID"] for j in queued(this_run) if j["State"] == "RUNNING"))
        done = cached(wd)
        assert proc.wait(timeout=300) == 0, log.read_text()[-4000:]
    finally:
        if drained(node):
            slurm("scontrol", "update", f"NodeName={node}", "State=RESUME")
        kill(proc)

    text = log.read_text()
    jobs = jobs_of_run(this_run)
    shards = [j for j in jobs if rule_of(j)[0] == "profile_shard"]
    assert sorted(j["State"].split()[0] for j in shards) == ["CANCELLED", "COMPLETED", "COMPLETED"], jobs
    assert "SLURM status is: 'CANCELLED'" in text and "Trying to restart job" in text
    counts = read_provenance(wd / PROFILED)["measurements"]  # summed over the shards
    assert counts["cache_hits"] >= done >= 3, counts  # the retry measured only what was missing
    assert counts["measured"] + counts["cache_hits"] == N_FAULT == len(read_table(wd / PROFILED))

    # Every shard asked for the target's threads and got a node to itself (--exclusive from the
    # profile), so no two shards shared a node: on this one-node cluster they ran one at a time.
    cpus = int(slurm("sinfo", "-h", "-o", "%c").split()[0])
    assert all(int(j["ReqCPUS"]) == 1 and f"cpu={cpus}," in j["AllocTRES"] for j in shards), shards
    spans = sorted((j["Start"], j["End"]) for j in shards)
    assert all(end <= later for (_, end), (later, _) in zip(spans, spans[1:], strict=False)), spans
    # Gathering the shards is light: one CPU in the default partition.
    gather = [(j["Partition"], j["ReqCPUS"], j["State"]) for j in jobs if rule_of(j)[0] == "profile"]
    assert gather == [(default_partition(), "1", "COMPLETED")], jobs
    # An account given as a resource is checked against the user's associations and used.
    assert "trying to guess" not in text and {j["Account"] for j in jobs} == {ACCOUNT}


def test_run_killed_amid_a_jobs_outputs_is_resumed_by_rerun_incomplete(prepared, tmp_path):
    wd = copy_of(prepared, tmp_path / "wd")
    check(run(wd, [*SNAKEMAKE, "--cores", "2", PROFILED])[0])
    frontier = "results/pareto_cpu.parquet"

    def archive() -> Path | None:
        return next((wd / "results/search").rglob("archive.parquet"), None)

    # The search job writes its archive first, then the frontier and figures. Freeze the job once
    # the archive is there, then kill Snakemake and the job outright (the login node and the
    # compute node crashing): the archive is left behind, marked incomplete.
    proc, log = start(wd, frontier)
    try:
        lost = started_run(proc, log)
        wait_until(archive, 240, "the search job's archive", proc, log)
        job = queued(lost)[0]["JobID"]
        slurm("scontrol", "suspend", job)
    finally:
        kill(proc)
    slurm("scancel", "--signal=KILL", "--full", job)
    slurm("scancel", job)
    wait_until(lambda: not queued(lost), 60, "the killed job to end")
    assert archive() and not (wd / frontier).exists()
    measurements = cached(wd)

    # Without rerun-incomplete Snakemake refuses to go on; with the profile's it runs the job again.
    check(run(wd, [*SNAKEMAKE, "--unlock"])[0])
    refused, _ = run(wd, [*SNAKEMAKE, "-n", frontier])
    assert refused.returncode != 0 and "incomplete" in text_of(refused).lower(), text_of(refused)[-2000:]
    proc, _ = run(wd, on_cluster(frontier), timeout=300)
    text = check(proc)
    assert [rule_of(j)[0] for j in jobs_of_run(run_id(text))] == ["search"]
    assert (wd / frontier).exists() and not queued(run_id(text))
    # The killed job had measured every candidate before writing its archive: none is measured again.
    assert cached(wd) == measurements


@pytest.fixture(scope="module")
def over_time(prepared, tmp_path_factory):
    """A run in the background whose profile job outlasts its time limit: (process, output, workdir).
    SLURM ends it a minute or more after it starts and the plugin takes a while more to notice, so
    the over-memory test asks for it too, to start it first: the two runs' waits overlap."""
    wd = copy_of(prepared, tmp_path_factory.mktemp("over_time") / "wd")
    edit_config(wd, lambda c: c["hardware"]["cpu"]["resources"].update(runtime=1))  # sbatch --time=1, the least
    # A profile job that outlasts its minute without using the CPU: the copy's script sleeps first.
    script = wd / "workflow/scripts/profile.py"
    script.write_text(f"import time\n\ntime.sleep(600)\n{script.read_text()}")
    # --retries 0: a retry would only wait out the same minute again.
    proc, log = start(wd, PROFILED, "--retries", "0")
    yield proc, log, wd
    kill(proc)


def test_job_over_its_memory_fails_naming_the_rule_and_the_limit(prepared, over_time, tmp_path):
    wd = copy_of(prepared, tmp_path / "wd")
    edit_config(wd, lambda c: c["hardware"]["cpu"]["resources"].update(mem_mb=300))  # less than PyTorch needs

    proc, _ = run(wd, on_cluster(PROFILED), timeout=300)
    text = text_of(proc)
    assert proc.returncode != 0 and not (wd / PROFILED).exists()
    # The error names the rule, SLURM's verdict and the job's SLURM log, which names the limit.
    error = text[text.index("Error in rule profile:") :]
    assert re.search(r"SLURM status is: '(FAILED|OUT_OF_MEMORY)'", error), error[:2000]
    slurm_log = re.search(r"log: .*?(\S+/slurm_logs/rule_profile/\S+\.log)", error).group(1)
    assert re.search(r"exceeded memory limit \(\d+ > 314572800\)", Path(slurm_log).read_text())
    # retries: 1 in the profile: the same request once more, failing the same way.
    jobs = jobs_of_run(run_id(text))
    assert [(rule_of(j)[0], j["ReqMem"], j["State"]) for j in jobs] == [("profile", "300M", "FAILED")] * 2, jobs
    assert not queued(run_id(text))
    # After the errors, one line names the rule, its wildcards, the limit and the config key to
    # raise (the workflow's onerror handler, paretolm.ops.cluster).
    explained = re.search(
        r"rule profile \(hardware=cpu, space=tiny\) was killed by SLURM for exceeding its memory "
        r"\(mem_mb=300; \d+ MB in use when killed\): "
        r"raise hardware\.cpu\.resources\.mem_mb in the config",
        text,
    )
    assert explained and explained.start() > text.rindex("Error in rule profile:"), text[-3000:]


def test_job_over_its_time_fails_naming_the_rule_and_what_to_raise(over_time):
    proc, log, wd = over_time
    assert proc.wait(timeout=300) != 0 and not (wd / PROFILED).exists()
    text = log.read_text()
    error = text[text.index("Error in rule profile:") :]
    assert "SLURM status is: 'TIMEOUT'" in error, error[:2000]
    slurm_log = re.search(r"log: .*?(\S+/slurm_logs/rule_profile/\S+\.log)", error).group(1)
    assert re.search(r"CANCELLED AT \S+ DUE TO TIME LIMIT", Path(slurm_log).read_text())
    jobs = jobs_of_run(run_id(text))
    assert [(rule_of(j)[0], j["Timelimit"], j["State"]) for j in jobs] == [("profile", "00:01:00", "TIMEOUT")], jobs
    explained = (
        "rule profile (hardware=cpu, space=tiny) was killed by SLURM for exceeding its time (runtime=1): "
        "raise hardware.cpu.resources.runtime (minutes) in the config"
    )
    assert explained in error, text[-3000:]
    assert not queued(run_id(text))
