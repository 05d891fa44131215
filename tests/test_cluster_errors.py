"""paretolm.ops.cluster without a cluster: which failed jobs SLURM killed over a limit, and what to raise.

The log texts are what the test cluster (scripts/dev/slurm.sh, tests/test_cluster.py) wrote for a
profile job over its memory and one over its time, and what slurmstepd and srun write on clusters
that enforce memory with cgroups.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from paretolm.ops import cluster

# What the SLURM executor adds to its error message under slurm-status-command: squeue.
UNAVAILABLE = (
    " Detailed failure reason unavailable (status command is not 'sacct').For further error details see the "
    "cluster/cloud log and the log files of the involved rule(s)."
)
# The Snakemake log of a run whose profile job went over its memory (mem_mb=300), retried once
# (retries: 1 in profiles/slurm), shortened to the blocks that matter. {logs}: the SLURM log folder,
# {unavailable}: UNAVAILABLE.
OVER_MEMORY_RUN = """\
Building DAG of jobs...
SLURM run ID: 86afa14d-8620-41fc-8eb9-2dadcddd5a10
Select jobs to execute...
Execute 1 jobs...
[Tue Dec  1 21:42:07 2026]
rule profile:
    input: results/samples/tiny.parquet, results/proxies/tiny.parquet
    output: results/profile/cpu/tiny.parquet
    log: logs/profile/cpu/tiny.log
    jobid: 0
    reason: Missing output files: results/profile/cpu/tiny.parquet
    wildcards: hardware=cpu, space=tiny
    resources: tmpdir=<TBD>, mem_mb=300, mem=300 MB, mem_mib=287, disk_mb=1000, disk=1 GB, disk_mib=954, runtime=10
Job 0 has been submitted with SLURM jobid 1 (log: {logs}/rule_profile/cpu_tiny/1.log).
[Tue Dec  1 21:42:19 2026]
Error in rule profile:
    message: SLURM-job '1' failed, SLURM status is: 'FAILED'.{unavailable}
    jobid: 0
    input: results/samples/tiny.parquet, results/proxies/tiny.parquet
    output: results/profile/cpu/tiny.parquet
    log: logs/profile/cpu/tiny.log, {logs}/rule_profile/cpu_tiny/1.log (check log file(s) for error details)
    external_jobid: 1
Logfile logs/profile/cpu/tiny.log not found.
Trying to restart job 0.
Select jobs to execute...
Execute 1 jobs...
[Tue Dec  1 21:42:19 2026]
rule profile:
    input: results/samples/tiny.parquet, results/proxies/tiny.parquet
    output: results/profile/cpu/tiny.parquet
    log: logs/profile/cpu/tiny.log
    jobid: 0
    reason: Missing output files: results/profile/cpu/tiny.parquet
    wildcards: hardware=cpu, space=tiny
    resources: tmpdir=<TBD>, mem_mb=300, mem=300 MB, mem_mib=287, disk_mb=1000, disk=1 GB, disk_mib=954, runtime=10
Job 0 has been submitted with SLURM jobid 2 (log: {logs}/rule_profile/cpu_tiny/2.log).
[Tue Dec  1 21:42:40 2026]
Error in rule profile:
    message: SLURM-job '2' failed, SLURM status is: 'FAILED'.{unavailable}
    jobid: 0
    input: results/samples/tiny.parquet, results/proxies/tiny.parquet
    output: results/profile/cpu/tiny.parquet
    log: logs/profile/cpu/tiny.log, {logs}/rule_profile/cpu_tiny/2.log (check log file(s) for error details)
    external_jobid: 2
Logfile logs/profile/cpu/tiny.log: empty file
Shutting down, this might take some time.
Exiting because a job execution failed. Look above for error messages
"""

# What slurmstepd wrote into that job's SLURM log (memory polled from /proc: JobAcctGatherParams=OverMemoryKill).
POLLED_OOM = """\
slurmstepd-vm: error: StepId=2.batch exceeded memory limit (341831680 > 314572800), being killed
slurmstepd-vm: error: Exceeded job memory limit
slurmstepd-vm: error: *** JOB 2 ON vm CANCELLED AT 2026-12-01T21:42:10 ***
"""
# With cgroups (v2, then v1), where the kernel's OOM killer ends the step.
CGROUP_OOM = (
    "slurmstepd: error: Detected 1 oom_kill event in StepId=45791123.batch. Some of the step tasks have "
    "been OOM Killed.\n"
)
CGROUP_V1_OOM = (
    "slurmstepd: error: Detected 1 oom-kill event(s) in StepId=1042215.batch cgroup. Some of your "
    "processes may have been killed by the cgroup out-of-memory handler.\n"
)
SRUN_OOM = "srun: error: nic5-w052: task 13: Out Of Memory\n"
# The end of the SLURM log of a profile job over its time (runtime=1), on the test cluster.
TIME_LIMIT = """\
[Tue Dec  1 21:47:01 2026]
localrule profile:
slurmstepd-vm: error: *** JOB 5 ON vm CANCELLED AT 2026-12-01T21:48:24 DUE TO TIME LIMIT ***
srun: Job step aborted: Waiting up to 7 seconds for job step to finish.
slurmstepd-vm: error: *** STEP 5.0 ON vm CANCELLED AT 2026-12-01T21:48:24 DUE TO TIME LIMIT ***
Will exit after finishing currently running jobs (scheduler).
"""
# Failures that are not over a limit: a job cancelled with scancel, and a job's own allocation
# failure (its traceback is in the SLURM log too, but SLURM did not kill it).
CANCELLED = "slurmstepd-vm: error: *** JOB 7 ON vm CANCELLED AT 2026-12-01T21:50:02 ***\n"
OWN_OOM = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.\n"
    "Command 'set -euo pipefail;  python3 .snakemake/scripts/tmpabc.profile.py' returned non-zero exit "
    "status 1.\n"
)

CONFIG = {"hardware": {"cpu": {"resources": {"mem_mb": 300, "runtime": 10}}}, "train": {"mem_mb": 8000, "runtime": 240}}


def write_run(tmp_path: Path, slurm_log: str, run: str = OVER_MEMORY_RUN) -> Path:
    """A workdir with the run's Snakemake log and ``slurm_log`` as its jobs' SLURM logs."""
    logs = tmp_path / ".snakemake/slurm_logs"
    (logs / "rule_profile/cpu_tiny").mkdir(parents=True)
    for jobid in (1, 2):
        (logs / f"rule_profile/cpu_tiny/{jobid}.log").write_text(slurm_log)
    main = tmp_path / ".snakemake/log/2026-12-01T214206.306806.snakemake.log"
    main.parent.mkdir(parents=True)
    main.write_text(run.format(logs=logs, unavailable=UNAVAILABLE))
    return main


def job(
    rule: str, wildcards: dict[str, str], log: Path | None = None, message: str = "FAILED", **resources: str
) -> cluster.FailedJob:
    return cluster.FailedJob(rule, wildcards, resources, f"SLURM-job '9' failed, SLURM status is: '{message}'.", log)


def test_the_last_attempt_of_a_retried_job_is_the_failure_with_its_wildcards_resources_and_slurm_log(tmp_path):
    main = write_run(tmp_path, POLLED_OOM)
    [failed] = cluster.failed_jobs(main.read_text())
    assert (failed.rule, failed.wildcards) == ("profile", {"hardware": "cpu", "space": "tiny"})
    assert (failed.resources["mem_mb"], failed.resources["runtime"]) == ("300", "10")
    assert failed.slurm_log == tmp_path / ".snakemake/slurm_logs/rule_profile/cpu_tiny/2.log"
    assert "SLURM status is: 'FAILED'" in failed.message


def test_a_job_over_its_memory_names_the_rule_the_limit_and_the_hardware_key(tmp_path):
    lines = cluster.report([str(write_run(tmp_path, POLLED_OOM))], CONFIG, emit=lambda line: None)
    assert lines == [
        "rule profile (hardware=cpu, space=tiny) was killed by SLURM for exceeding its memory "
        "(mem_mb=300; 325 MB in use when killed): raise hardware.cpu.resources.mem_mb in the config"
    ]


@pytest.mark.parametrize("slurm_log", [CGROUP_OOM, CGROUP_V1_OOM, SRUN_OOM], ids=["cgroup-v2", "cgroup-v1", "srun"])
def test_cgroup_kills_are_over_memory(tmp_path, slurm_log):
    log = tmp_path / "1.log"
    log.write_text(f"Building DAG of jobs...\n{slurm_log}")
    assert cluster.exceeded(job("search", {"method": "lts", "hardware": "cpu"}, log)) == ("memory", None)


def test_the_job_state_tells_when_the_slurm_log_is_gone(tmp_path):
    gone = job("profile", {"hardware": "cpu", "space": "tiny"}, tmp_path / "gone.log", "OUT_OF_MEMORY")
    assert cluster.exceeded(gone) == ("memory", None)
    assert cluster.exceeded(job("profile", {"hardware": "cpu", "space": "tiny"}, None, "TIMEOUT")) == ("time", None)


@pytest.mark.parametrize("slurm_log", [CANCELLED, OWN_OOM, ""], ids=["scancel", "job's own allocation", "empty"])
def test_failures_other_than_a_limit_give_no_line(tmp_path, slurm_log):
    log = tmp_path / "1.log"
    log.write_text(slurm_log)
    failed = job("profile", {"hardware": "cpu", "space": "tiny"}, log, "CANCELLED", mem_mb="300")
    assert cluster.exceeded(failed) is None and cluster.explain([failed], CONFIG) == []


def test_a_job_over_its_time_names_the_runtime_key_in_minutes(tmp_path):
    log = tmp_path / "5.log"
    log.write_text(TIME_LIMIT)
    failed = job("profile", {"hardware": "cpu", "space": "tiny"}, log, "TIMEOUT", mem_mb="1500", runtime="10")
    assert cluster.explain([failed], CONFIG) == [
        "rule profile (hardware=cpu, space=tiny) was killed by SLURM for exceeding its time (runtime=10): "
        "raise hardware.cpu.resources.runtime (minutes) in the config"
    ]


@pytest.mark.parametrize(
    ("rule", "wildcards", "key", "where"),
    [
        (
            "profile_shard",
            {"hardware": "cpu", "space": "tiny", "shard": "1", "shards": "2"},
            "hardware.cpu.resources.mem_mb",
            "in the config",
        ),
        ("search", {"method": "lts", "hardware": "cpu"}, "hardware.cpu.resources.mem_mb", "in the config"),
        ("train", {"arch_id": "a1b2"}, "train.mem_mb", "in the config"),
        ("proxies", {"space": "tiny"}, "set-resources: proxies: mem_mb", "in the workflow profile"),
        ("evaluate", {"arch_id": "a1b2"}, "set-resources: evaluate: mem_mb", "in the workflow profile"),
    ],
)
def test_the_key_to_raise_comes_from_where_the_rule_takes_its_resources(rule, wildcards, key, where):
    assert cluster.setting(job(rule, wildcards), "mem_mb") == (key, where)


def test_a_job_whose_resource_is_not_the_configs_is_sent_to_set_resources():
    # A profile job gathering shards runs with the rule's 2000 MB, not the target's memory.
    gathering = job("profile", {"hardware": "cpu", "space": "tiny"}, mem_mb="2000")
    assert cluster.setting(gathering, "mem_mb", CONFIG) == ("set-resources: profile: mem_mb", "in the workflow profile")
    # A target without resources.mem_mb runs with the rule's default: setting it is the fix.
    unset = {"hardware": {"cpu": {"resources": {}}}}
    assert cluster.setting(gathering, "mem_mb", unset) == ("hardware.cpu.resources.mem_mb", "in the config")
    assert cluster.setting(job("train", {"arch_id": "a1"}, runtime="240"), "runtime", CONFIG)[0] == "train.runtime"


def test_a_retry_that_succeeded_leaves_no_failure(tmp_path):
    run = OVER_MEMORY_RUN.split("Logfile logs/profile/cpu/tiny.log not found.")[0] + (
        "Trying to restart job 0.\n[Tue Dec  1 21:42:19 2026]\nFinished jobid: 0 (Rule: profile)\n"
    )
    assert cluster.failed_jobs(write_run(tmp_path, POLLED_OOM, run).read_text()) == []


def test_a_slurm_log_the_error_does_not_name_is_found_where_the_plugin_writes_it(tmp_path):
    run = OVER_MEMORY_RUN.replace(", {logs}/rule_profile/cpu_tiny/2.log", "")
    [failed] = cluster.failed_jobs(write_run(tmp_path, POLLED_OOM, run).read_text(), workdir=tmp_path)
    assert failed.slurm_log == tmp_path / ".snakemake/slurm_logs/rule_profile/cpu_tiny/2.log"
    assert cluster.exceeded(failed) == ("memory", 341831680)


def test_report_emits_each_line_and_stays_quiet_without_a_log(tmp_path):
    emitted: list[str] = []
    main = write_run(tmp_path, POLLED_OOM)
    assert cluster.report([str(main)], CONFIG, emit=emitted.append) == emitted and len(emitted) == 1
    # a local run's failure, or no log file at all: nothing to add to the run's own error
    assert cluster.report([str(tmp_path / "missing.log")], CONFIG, emit=emitted.append) == []
    assert cluster.report([], CONFIG, emit=emitted.append) == [] and len(emitted) == 1
