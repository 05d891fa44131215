# Validation half, stage 3: perplexity, zero-shot accuracy, latency and memory per trained model.


rule evaluate:
    """Evaluate one trained model -> results/eval/{arch_id}.parquet."""
    input:
        archs="results/validation/archs.parquet",
        model="results/train/{arch_id}/model",
        summary="results/train/{arch_id}/train_summary.json",
    output:
        "results/eval/{arch_id}.parquet",
    log:
        "logs/evaluate/{arch_id}.log",
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
    """Every evaluated model in one table."""
    input:
        lambda wc: expand("results/eval/{arch_id}.parquet", arch_id=validation_archs()),
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
