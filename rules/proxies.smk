rule proxies:
    """Score every sampled architecture with the configured proxies."""
    input:
        samples="results/samples/{space}.parquet",
        params=params_file("proxies"),
    output:
        "results/proxies/{space}.parquet",
    log:
        "logs/proxies/{space}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        ENV
    script:
        "../scripts/proxies.py"
