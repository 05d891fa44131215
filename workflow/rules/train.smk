# Validation half, stage 2: train each selected architecture.


rule train:
    """Train one architecture from scratch (resumes from results/train/{arch_id}/checkpoint)."""
    input:
        archs="results/validation/archs.parquet",
    output:
        model=directory("results/train/{arch_id}/model"),
        log="results/train/{arch_id}/train_log.parquet",
        summary="results/train/{arch_id}/train_summary.json",
    log:
        "logs/train/{arch_id}.log",
    conda:
        ENV
    threads: config["train"]["threads"]
    resources:
        mem_mb=config["train"]["mem_mb"],
        runtime=config["train"]["runtime"],
    params:
        part=config_part("train"),
    script:
        "../scripts/train.py"
