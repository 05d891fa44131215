rule sample:
    """Draw sample.n architectures from a search space (seeded)."""
    input:
        space=space_yaml,
    output:
        "results/samples/{space}.parquet",
    log:
        "logs/sample/{space}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        part=config_part("sample"),
    script:
        "../scripts/sample.py"
