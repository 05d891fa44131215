rule proxies:
    """Score every sampled architecture with the configured proxies."""
    input:
        samples="results/samples/{space}.parquet",
        trained=trained_inputs("proxies"),
    output:
        "results/proxies/{space}.parquet",
    log:
        "logs/proxies/{space}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        part=config_part("proxies"),
    script:
        "../scripts/proxies.py"
