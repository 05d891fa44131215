# Validation half, stage 2: train each selected architecture.


rule train:
    """Train one run (an architecture; a seed for repeats) from scratch, resuming from
    results/train/{run}/checkpoint; the validation loss at each train.budgets fraction goes to
    budgets.parquet."""
    input:
        archs="results/validation/archs.parquet",
    output:
        model=directory("results/train/{run}/model"),
        log="results/train/{run}/train_log.parquet",
        budgets="results/train/{run}/budgets.parquet",
        summary="results/train/{run}/train_summary.json",
    log:
        "logs/train/{run}.log",
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
