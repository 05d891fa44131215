"""Why a SLURM job of the workflow failed, when SLURM killed it over its memory or time limit.

``report`` runs in the workflow's ``onerror`` handler: it reads the run's Snakemake log (which
names each failed job, its wildcards, resources and SLURM log) and the jobs' SLURM logs, and prints
one line per job SLURM killed, naming the rule and the setting to raise.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Where each rule's mem_mb and runtime come from (workflow/rules/*.smk): the measuring rules take
# them from their hardware target, train from the config's train part; every other rule from the
# rule itself, which the workflow profile's set-resources overrides (OTHER_RULES).
CONFIG_KEYS: dict[str, str] = {
    "profile": "hardware.{hardware}.resources.{resource}",
    "profile_shard": "hardware.{hardware}.resources.{resource}",
    "search": "hardware.{hardware}.resources.{resource}",
    "train": "train.{resource}",
}
OTHER_RULES = "set-resources: {rule}: {resource}"

# The limit SLURM enforces -> the Snakemake resource that sets it (runtime in minutes, --time).
RESOURCES = {"memory": "mem_mb", "time": "runtime"}

# What SLURM says when it ends a job over a limit. In the job's log, slurmstepd writes "exceeded
# memory limit (<used> > <limit>)" and "Exceeded job memory limit" (memory polled from /proc),
# "Detected 1 oom_kill event" / "oom-kill event(s)" and "out-of-memory handler" (cgroups), srun
# "task 0: Out Of Memory", or "CANCELLED AT <time> DUE TO TIME LIMIT"; the executor's message gives
# the job state (OUT_OF_MEMORY, TIMEOUT).
SIGNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("memory", re.compile(r"exceeded (job )?memory limit|oom[-_ ]kill|out[- _]of[- _]memory|OutOfMemory", re.I)),
    ("time", re.compile(r"DUE TO TIME LIMIT|\bTIMEOUT\b")),
)
USED = re.compile(r"exceeded memory limit \((\d+) > \d+\)")
# Only lines SLURM wrote count: the SLURM log also holds everything the job printed, and a job's
# own "out of memory" (a failed allocation, a tensor too large for the GPU) is not SLURM killing it.
BY_SLURM = re.compile(r"^(slurmstepd|srun)(-\S+)?: ")


@dataclass(frozen=True)
class FailedJob:
    """A job of the run that failed for good (its last attempt), as the Snakemake log shows it."""

    rule: str
    wildcards: dict[str, str]
    resources: dict[str, str]  # as Snakemake printed them: mem_mb=300, runtime=10 (minutes)
    message: str = ""  # the executor's: "SLURM-job '1' failed, SLURM status is: 'FAILED'. ..."
    slurm_log: Path | None = None


def slurm_log_path(workdir: Path, rule: str, wildcards: Mapping[str, str], jobid: str) -> Path:
    """Where snakemake-executor-plugin-slurm (2.x) has SLURM write a job's log:
    ``.snakemake/slurm_logs/rule_<rule>/<wildcard values joined by _>/<jobid>.log``."""
    values = "_".join(wildcards.values()).replace("/", "_")
    return workdir / ".snakemake/slurm_logs" / f"rule_{rule}" / values / f"{jobid}.log"


def _pairs(text: str) -> dict[str, str]:
    """``a=1, b=x y`` (Snakemake's wildcards and resources lines) as a dict."""
    return dict(item.split("=", 1) for item in text.split(", ") if "=" in item)


def _blocks(text: str) -> Iterable[tuple[str, dict[str, str]]]:
    """The Snakemake log's job and error blocks: a header line, then ``    key: value`` lines."""
    header, fields = None, {}
    for line in [*text.splitlines(), ""]:
        item = re.match(r"    (\w+): (.*)$", line)
        if header and item:
            fields[item.group(1)] = item.group(2)
            continue
        if header:
            yield header, fields
        header, fields = None, {}
        if re.match(r"((local)?(rule|checkpoint) \w+|Error in rule \w+):$", line):
            header = line[:-1]
        elif restart := re.match(r"Trying to restart job (\d+)\.", line):
            yield "restart", {"jobid": restart.group(1)}


def failed_jobs(text: str, workdir: Path | None = None) -> list[FailedJob]:
    """The jobs a Snakemake log (``.snakemake/log/*.snakemake.log``) reports failed and not
    restarted after, with the wildcards and resources of their last submission. ``workdir``
    locates a SLURM log the error does not name."""
    submitted: dict[str, dict[str, str]] = {}  # jobid -> its last job block
    failed: dict[str, FailedJob] = {}
    for header, fields in _blocks(text):
        jobid = fields.get("jobid", "")
        if header == "restart":
            failed.pop(jobid, None)  # retried: its later attempt counts
        elif not header.startswith("Error in rule "):
            submitted[jobid] = fields
        else:
            rule = header.removeprefix("Error in rule ")
            job = submitted.get(jobid, {})
            wildcards = _pairs(job.get("wildcards", ""))
            logs = fields.get("log", "").split(" (check log file(s)")[0].split(", ")
            slurm_log = next((Path(p) for p in logs if "/slurm_logs/" in p), None)
            if slurm_log is None and workdir is not None and fields.get("external_jobid"):
                slurm_log = slurm_log_path(workdir, rule, wildcards, fields["external_jobid"])
            failed[jobid] = FailedJob(
                rule, wildcards, _pairs(job.get("resources", "")), fields.get("message", ""), slurm_log
            )
    return list(failed.values())


def exceeded(job: FailedJob) -> tuple[str, int | None] | None:
    """(``memory`` or ``time``, the bytes in use when SLURM killed it, where its log says) when
    SLURM killed ``job`` over that limit; None when it failed otherwise."""
    try:
        log = job.slurm_log.read_text(errors="replace") if job.slurm_log else ""
    except OSError:  # removed, or not on this host's filesystem: the job state may still tell
        log = ""
    said = [line for line in log.splitlines() if BY_SLURM.match(line)]
    for limit, sign in SIGNS:
        if sign.search(job.message) or any(sign.search(line) for line in said):
            used = [int(m.group(1)) for line in said if (m := USED.search(line))]
            return limit, max(used, default=None)
    return None


def _lookup(config: Mapping[str, Any], key: str) -> Any:
    """``config["a"]["b"]`` for ``a.b``; None where a part is missing."""
    value: Any = config
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def setting(job: FailedJob, resource: str, config: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """(the key that sets ``resource`` of ``job``, where it is): a config key for the rules of
    CONFIG_KEYS, else the workflow profile's set-resources. With ``config``, a config key whose
    value is not the job's is not where the job got it (a profile job gathering shards or reading
    measurements made elsewhere runs light; set-resources overrides the rule): set-resources is."""
    template = CONFIG_KEYS.get(job.rule)
    try:
        key = template.format(resource=resource, **job.wildcards) if template else None
    except KeyError:  # a job without the wildcard its key needs (not one of this workflow's)
        key = None
    if key is not None:
        configured = None if config is None else _lookup(config, key)
        used = job.resources.get(resource)
        if not (str(configured).isdigit() and str(used).isdigit()) or int(configured) == int(used):
            return key, "in the config"
    return OTHER_RULES.format(rule=job.rule, resource=resource), "in the workflow profile"


def explain(jobs: Iterable[FailedJob], config: Mapping[str, Any] | None = None) -> list[str]:
    """One line per job SLURM killed over its memory or time: the rule, its wildcards, the limit
    and what to raise. Jobs that failed otherwise give none."""
    lines = []
    for job in jobs:
        found = exceeded(job)
        if found is None:
            continue
        limit, used = found
        resource = RESOURCES[limit]
        key, where = setting(job, resource, config)
        wildcards = ", ".join(f"{k}={v}" for k, v in job.wildcards.items())
        what = [f"{resource}={job.resources[resource]}"] if resource in job.resources else []
        if used is not None:
            # in MiB, the unit SLURM reads mem_mb in (--mem=<mem_mb>M)
            what.append(f"{used >> 20} MB in use when killed")
        line = f"rule {job.rule}" + (f" ({wildcards})" if wildcards else "")
        line += f" was killed by SLURM for exceeding its {limit}" + (f" ({'; '.join(what)})" if what else "")
        line += f": raise {key}" + (" (minutes)" if limit == "time" else "") + f" {where}"
        lines.append(line)
    return lines


def report(
    logs: str | Iterable[str], config: Mapping[str, Any] | None = None, emit: Callable[[str], None] | None = None
) -> list[str]:
    """The workflow's ``onerror`` handler: explain the failures of the run whose Snakemake log
    file(s) ``logs`` are (``onerror``'s ``log``: a list of paths in Snakemake 9, empty when file
    logging is off) and emit each line (Snakemake's logger by default, so they end the run's
    output, before "Complete log(s)"). Returns the lines."""
    if emit is None:
        from snakemake.logging import logger

        emit = logger.error
    lines = []
    for path in [logs] if isinstance(logs, str) else logs:
        path = Path(path)
        try:
            text = path.read_text(errors="replace")
        except OSError:  # nothing to add: the run's own error stands
            continue
        # the log is <workdir>/.snakemake/log/<time>.snakemake.log
        workdir = path.parents[2] if len(path.parents) > 2 else None
        lines += explain(failed_jobs(text, workdir=workdir), config)
    for line in lines:
        emit(line)
    return lines
