# Shared helpers: the validated config, each stage's config part as its params, target lookups.

from pathlib import Path

from snakemake.logging import logger

from paretolm import stages
from paretolm.proxies import PROXIES

from paretolm.core import artifacts
from paretolm.config import hardware_target, method_space, space_file, validate_config

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
    run="[A-Za-z0-9_-]+",


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
        from paretolm.hardware.sources import check_target

        check_target(wc.hardware, target(wc))
    return []


def runtime_runs_space(wc):
    """Input function naming no file: checks, before any job, that the hardware target's runtime
    can run the architectures of the job's space (its wildcard, or the searching method's).
    """
    from paretolm.core.spaces import SearchSpace
    from paretolm.hardware.sources import check_space

    space = wc.space if "space" in wc.keys() else method_space(config, wc.method)
    check_space(
        wc.hardware, target(wc), SearchSpace.from_yaml(space_file(config, space))
    )
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


# Profile jobs: profile.shards > 1 splits each target's profiling into that many jobs (rule
# profile_shard, each measuring every n-th sample), which rule profile gathers; with 1 it
# measures in one job.
PROFILE_SHARDS = config["profile"]["shards"]
GATHERS = PROFILE_SHARDS > 1


def profile_shards(wc):
    """The shard tables rule profile gathers (none when it measures itself)."""
    if PROFILE_SHARDS == 1:
        return []
    return [
        f"results/profile/{wc.hardware}/shards/{wc.space}.{k}of{PROFILE_SHARDS}.parquet"
        for k in range(1, PROFILE_SHARDS + 1)
    ]


def imported_measurements(wc):
    """The tables a source: import target reads: a new or changed file reruns the stage."""
    from paretolm.hardware.sources import import_dir, target_source

    hw = target(wc)
    if target_source(wc.hardware, hw) != "import":
        return []
    return sorted(str(p) for p in import_dir(wc.hardware, hw).glob("*.parquet"))


def on_target(value, otherwise, gathers=False):
    """A job setting: ``value(wc)`` when the job measures on this machine or cluster, else
    ``otherwise`` (a job that gathers shards, imports or asks a server runs anywhere, light).
    """
    from paretolm.hardware.sources import target_source

    def setting(wc):
        here = target_source(wc.hardware, target(wc)) == "local"
        return value(wc) if here and not gathers else otherwise

    return setting


def search_profile(wc):
    """The profiled samples of a search method's space on the target (its first population
    and, under search.measure verify, its predictors' first training set)."""
    from paretolm.config import method_space

    return f"results/profile/{wc.hardware}/{method_space(config, wc.method)}.parquet"


def search_space(wc):
    """A search method's space file. What the method needs from the config is checked here,
    while the DAG is built, so a method asked for on the command line fails before any job.
    """
    from paretolm.config import check_method, method_space

    check_method(config, wc.method)
    return str(space_file(config, method_space(config, wc.method)))


def frontier_inputs(wc):
    """The searched frontiers the validation sources of kind ``frontier`` read."""
    return stages.stage("select").frontier_inputs(config)


def validation_runs(wc=None):
    """Training runs chosen by the select_validation checkpoint (re-evaluated once it has run):
    the arch_id of each selected architecture, and <arch_id>-seed<s> for validation.repeats.
    """
    import pandas as pd

    path = checkpoints.select_validation.get().output[0]
    return pd.read_parquet(path, columns=["run"])["run"].tolist()


# The supernet_loss proxy's settings: where rule supernet writes what the proxy reads.
SUPERNET = stages.stage("supernet").settings(config)


def trained_inputs(scores):
    """Input function of the jobs that score proxies: what each proxy they score reads that a rule
    trained beforehand (its ``artifact``: the supernet folder of supernet_loss), so those rules run
    first. ``scores``: "proxies" for proxies.names, "validation" for validation.proxies, which
    defaults to them.
    """

    def inputs(wc):
        names = config["proxies"]["names"]
        if scores == "validation":
            names = config["validation"]["proxies"] or names
        settings = config["proxies"]["settings"] or {}
        paths = []
        for name in names:
            proxy = PROXIES.get(name)
            if proxy.artifact is not None:
                paths.append(
                    str(proxy.artifact(proxy.make_settings(settings.get(name))))
                )
        return paths

    return inputs
