# Validation half, stage 1: choose the architectures to train.


checkpoint select_validation:
    """The architectures to train: search frontier, hand-scaled baselines and/or a random sample."""
    input:
        unpack(frontier_inputs),
    output:
        "results/validation/archs.parquet",
    log:
        "logs/validation/select.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        part=config_part("select"),
    script:
        "../scripts/select.py"
