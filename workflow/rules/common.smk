# Shared helpers: the validated config, each stage's config part as its params, target lookups.

from pathlib import Path

from snakemake.logging import logger

from paretolm import artifacts, stages
from paretolm.config import hardware_target, space_file, validate_config

# Validated once, against the workflow's schema: fills the schema's defaults and runs the
# cross-field checks, so a misspelt key or an impossible setting stops the run before any job.
validate_config(
    config,
    schema=Path(workflow.basedir) / "schemas/config.schema.yaml",
    # in the order they take effect: the workflow's configfile, then --configfile layers
    files=[
        *(f for f in workflow.configfiles if f not in workflow.overwrite_configfiles),
        *workflow.overwrite_configfiles,
    ],
)

# A Parquet artifact that cannot be read (a disk or an editor broke it) is marked out of date,
# so Snakemake rebuilds it before the next stage reads it.
for _path, _problem in artifacts.mark_damaged("results"):
    logger.warning(f"{_path}: damaged ({_problem}); it will be rebuilt")

SEARCH_SPACE = config["search"]["space"]
ENV = "../envs/paretolm.yaml"


wildcard_constraints:
    space="[A-Za-z0-9_.-]+",
    hardware="[A-Za-z0-9_]+",


def config_part(stage):
    """Params function: the config part of ``stage`` for a job's wildcards. Snakemake records it
    with the job's outputs and reruns the job when it changes (the params rerun trigger).
    """
    return lambda wc: stages.config_part(stage, config, **dict(wc.items()))


def space_yaml(wc):
    return str(space_file(config, wc.space))


def target(wc):
    return hardware_target(config, wc.hardware)


def hardware_available(wc):
    """Input function naming no file: checks that this machine can get the job's hardware
    target's measurements when jobs run here (a local target runs here; a remote one has its
    token; an import one needs nothing), so a target this machine cannot serve stops the run
    before any job starts. Cluster runs check on the node that measures.
    """
    if workflow.local_exec and not workflow.dryrun and not workflow.remote_exec:
        from paretolm.measurement import check_target

        check_target(wc.hardware, target(wc))
    return []


def hw_threads(wc):
    return int(target(wc)["threads"])


def hw_resource(key, default):
    """Resource of a hardware target (``hardware.<name>.resources.<key>``), else ``default``."""
    return lambda wc: target(wc)["resources"].get(key, default)


def hw_slurm(key):
    """Cluster routing of a hardware target (``hardware.<name>.slurm.<key>``); None (the
    resource stays unset, so the SLURM executor adds no flag) when the target leaves it out.
    """
    return lambda wc: target(wc)["slurm"][key] or None


def frontier_inputs(wc):
    """The searched frontiers the validation sources of kind ``frontier`` read."""
    return stages.stage("select").frontier_inputs(config)


def validation_archs(wc=None):
    """arch_ids chosen by the select_validation checkpoint (re-evaluated once it has run)."""
    import pandas as pd

    path = checkpoints.select_validation.get().output[0]
    return pd.read_parquet(path, columns=["arch_id"])["arch_id"].tolist()
