# Shared helpers: the validated config, per-stage params files, hardware-target lookups.

from paretolm import workflow as wf

# Defaults for hardware targets and the cross-field checks the schema cannot express.
wf.validate_config(config)
# One params file per stage and wildcard, rewritten only when its config part changes: a rule
# takes its file as an input, so a config edit reruns exactly the stages it affects.
wf.write_params_files(config)

SPACES = wf.spaces(config)
HARDWARE = list(config["hardware"])
SEARCH_SPACE = config["search"]["space"]
ENV = "../envs/paretolm.yaml"


wildcard_constraints:
    space="[A-Za-z0-9_.-]+",
    hardware="[A-Za-z0-9_]+",


def params_file(stage):
    """Input function: the params file of ``stage`` for a job's wildcards."""
    return lambda wc: wf.params_path(stage, **dict(wc.items()))


def space_yaml(wc):
    return str(wf.space_file(config, wc.space))


def target(wc):
    return wf.hardware_target(config, wc.hardware)


def checked_profile_params(wc):
    """The profile params file, after checking that this machine can serve the target when jobs
    run here: an unavailable target stops the run before any job starts. Cluster runs check on
    the node that measures (the profiling code checks again before its first measurement)."""
    if workflow.local_exec and not workflow.dryrun and not workflow.remote_exec:
        from paretolm.profiling import check_available

        check_available(wc.hardware, target(wc))
    return wf.params_path("profile", **dict(wc.items()))


def checked_search_params(wc):
    if workflow.local_exec and not workflow.dryrun and not workflow.remote_exec:
        from paretolm.profiling import check_available

        check_available(wc.hardware, target(wc))
    return wf.params_path("search", **dict(wc.items()))


def hw_threads(wc):
    return int(target(wc)["threads"])


def hw_resource(key, default):
    """Resource of a hardware target (``hardware.<name>.resources.<key>``), else ``default``."""
    return lambda wc: target(wc).get("resources", {}).get(key, default)


def hw_slurm(key):
    """Cluster routing of a hardware target (``hardware.<name>.slurm.<key>``); None (the
    resource stays unset, so the SLURM executor adds no flag) when the target leaves it out."""
    return lambda wc: target(wc).get("slurm", {}).get(key) or None


# -- validation half -------------------------------------------------------------------------
VAL_PARAMS = wf.VALIDATION_PARAMS
wf.write_validation_params(config)


def _frontier_inputs(wc):
    return {f"frontier_{s['hardware']}": f"results/pareto_{s['hardware']}.parquet"
            for s in config["validation"]["sources"] if s.get("kind") == "frontier"}


def validation_archs(wc=None):
    """arch_ids chosen by the select_validation checkpoint (re-evaluated once it has run)."""
    import pandas as pd

    path = checkpoints.select_validation.get().output[0]
    return pd.read_parquet(path, columns=["arch_id"])["arch_id"].tolist()
