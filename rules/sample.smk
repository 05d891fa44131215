rule sample:
    """Draw sample.n architectures from a search space (seeded)."""
    input:
        space=space_yaml,
        params=params_file("sample"),
    output:
        "results/samples/{space}.parquet",
    log:
        "logs/sample/{space}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/sample.py"
