rule profile_shard:
    """One shard of the profile stage: every n-th sampled architecture on one hardware target."""
    input:
        samples="results/samples/{space}.parquet",
        imported=imported_measurements,
        available=hardware_available,
        runs=runtime_runs_space,
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
        runs=runtime_runs_space,
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
