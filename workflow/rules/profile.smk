# profile.shards > 1 splits each target's profiling into that many jobs (rule profile_shard, each
# measuring every n-th sample), which rule profile gathers; with 1 it measures in one job.
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
    from paretolm.measurement import import_dir, target_source

    hw = target(wc)
    if target_source(wc.hardware, hw) != "import":
        return []
    return sorted(str(p) for p in import_dir(wc.hardware, hw).glob("*.parquet"))


def on_target(value, otherwise, gathers=False):
    """A job setting: ``value(wc)`` when the job measures on this machine or cluster, else
    ``otherwise`` (a job that gathers shards, imports or asks a server runs anywhere, light).
    """
    from paretolm.measurement import target_source

    def setting(wc):
        here = target_source(wc.hardware, target(wc)) == "local"
        return value(wc) if here and not gathers else otherwise

    return setting


rule profile_shard:
    """One shard of the profile stage: every n-th sampled architecture on one hardware target."""
    input:
        samples="results/samples/{space}.parquet",
        imported=imported_measurements,
        available=hardware_available,
    output:
        "results/profile/{hardware}/shards/{space}.{shard}of{shards}.parquet",
    log:
        "logs/profile/{hardware}/{space}.{shard}of{shards}.log",
    wildcard_constraints:
        shard="[0-9]+",
        shards="[0-9]+",
    conda:
        ENV
    threads: on_target(hw_threads, 1)
    resources:
        mem_mb=on_target(hw_resource("mem_mb", 4000), 2000),
        runtime=on_target(hw_resource("runtime", 60), 60),
        slurm_partition=on_target(hw_slurm("partition"), None),
        constraint=on_target(hw_slurm("constraint"), None),
        gres=on_target(hw_slurm("gres"), None),
    params:
        part=config_part("profile"),
    script:
        "../scripts/profile_shard.py"


rule profile:
    """Latency and peak memory of every sampled architecture on one hardware target."""
    input:
        samples="results/samples/{space}.parquet",
        proxies="results/proxies/{space}.parquet",
        shards=profile_shards,
        imported=imported_measurements,
        available=hardware_available,
    output:
        "results/profile/{hardware}/{space}.parquet",
    log:
        "logs/profile/{hardware}/{space}.log",
    conda:
        ENV
    threads: on_target(hw_threads, 1, gathers=GATHERS)
    resources:
        mem_mb=on_target(hw_resource("mem_mb", 4000), 2000, gathers=GATHERS),
        runtime=on_target(hw_resource("runtime", 60), 60, gathers=GATHERS),
        slurm_partition=on_target(hw_slurm("partition"), None, gathers=GATHERS),
        constraint=on_target(hw_slurm("constraint"), None, gathers=GATHERS),
        gres=on_target(hw_slurm("gres"), None, gathers=GATHERS),
    params:
        part=config_part("profile"),
    script:
        "../scripts/profile.py"
