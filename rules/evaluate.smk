# Validation half, stage 2: perplexity, zero-shot accuracy, latency and memory per trained model.


rule evaluate:
    """Evaluate one trained model -> results/eval/{arch_id}.parquet."""
    input:
        archs="results/validation/archs.parquet",
        weights="results/train/{arch_id}/model/model.safetensors",
        train_log="results/train/{arch_id}/train_log.parquet",
        params=f"{VAL_PARAMS}/evaluate.json",
    output:
        "results/eval/{arch_id}.parquet",
    log:
        "logs/evaluate/{arch_id}.log",
    threads: int(config["evaluate"].get("threads", 1))
    resources:
        mem_mb=8000,
        runtime=120,
    conda:
        ENV
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
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/evaluate.py"
