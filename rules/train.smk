# Validation half, stage 1: choose the architectures to train (checkpoint) and train each one.

checkpoint select_validation:
    """The architectures to train: search frontier, hand-scaled baselines and/or a random sample."""
    input:
        unpack(_frontier_inputs),
        params=f"{VAL_PARAMS}/select.json",
    output:
        "results/validation/archs.parquet",
    log:
        "logs/validation/select.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    script:
        "../scripts/train.py"


rule train:
    """Train one architecture from scratch (resumes from results/train/{arch_id}/checkpoint)."""
    input:
        archs="results/validation/archs.parquet",
        params=f"{VAL_PARAMS}/train.json",
    output:
        log="results/train/{arch_id}/train_log.parquet",
        weights="results/train/{arch_id}/model/model.safetensors",
    log:
        "logs/train/{arch_id}.log",
    threads: int(config["train"].get("threads", 1))
    resources:
        mem_mb=int(config["train"].get("mem_mb", 8000)),
        runtime=int(config["train"].get("runtime", 240)),
    conda:
        ENV
    script:
        "../scripts/train.py"
