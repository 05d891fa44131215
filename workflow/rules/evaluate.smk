# Validation half, stage 3: perplexity, zero-shot accuracy, latency and memory per trained model.


rule evaluate:
    """Evaluate one trained run -> results/eval/{run}.parquet."""
    input:
        archs="results/validation/archs.parquet",
        model="results/train/{run}/model",
        summary="results/train/{run}/train_summary.json",
        budgets="results/train/{run}/budgets.parquet",
    output:
        "results/eval/{run}.parquet",
    log:
        "logs/evaluate/{run}.log",
    conda:
        ENV
    threads: config["evaluate"]["threads"]
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        part=config_part("evaluate"),
    script:
        "../scripts/evaluate.py"


rule eval_table:
    """Every evaluated run in one table."""
    input:
        lambda wc: expand("results/eval/{run}.parquet", run=validation_runs()),
    output:
        "results/eval.parquet",
    log:
        "logs/evaluate/eval_table.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/eval_table.py"
