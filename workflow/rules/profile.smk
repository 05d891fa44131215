rule profile:
    """Latency and peak memory of every sampled architecture on one hardware target."""
    input:
        samples="results/samples/{space}.parquet",
        proxies="results/proxies/{space}.parquet",
        available=hardware_available,
    output:
        "results/profile/{hardware}/{space}.parquet",
    log:
        "logs/profile/{hardware}/{space}.log",
    conda:
        ENV
    threads: hw_threads
    resources:
        mem_mb=hw_resource("mem_mb", 4000),
        runtime=hw_resource("runtime", 60),
        slurm_partition=hw_slurm("partition"),
        constraint=hw_slurm("constraint"),
        gres=hw_slurm("gres"),
    params:
        part=config_part("profile"),
    script:
        "../scripts/profile.py"
