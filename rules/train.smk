# Validation half, stage 1: choose the architectures to train (checkpoint) and train each one.

from paretolm.workflow import write_params as _write_val_params

VAL_PARAMS = "results/params/validation"


def _val_stage_config(stage):
    """The config part that can change a validation stage's outputs."""
    data = {k: config[k] for k in ("train", "datasets", "tokenizers")}
    if stage == "select":
        return {**data, "spaces_dir": config["spaces_dir"],
                "validation": {"sources": config["validation"]["sources"]}}
    if stage == "train":
        return data
    if stage == "evaluate":
        hw = config["validation"].get("hardware")
        hardware = None
        if hw:
            target = {k: v for k, v in wf.hardware_target(config, hw).items() if k not in ("resources", "slurm")}
            hardware = {"name": hw, "target": target,
                        "profile": {k: v for k, v in config["profile"].items() if k != "cache"}}
        return {**data, "evaluate": config["evaluate"], "hardware": hardware}
    if stage == "correlate":
        val = {k: v for k, v in config["validation"].items() if k != "sources"}
        return {**data, "validation": val, "proxies": config["proxies"]}
    raise ValueError(stage)


for _stage in ("select", "train", "evaluate", "correlate"):
    _write_val_params(f"{VAL_PARAMS}/{_stage}.json", _val_stage_config(_stage))


def _frontier_inputs(wc):
    return {f"frontier_{s['hardware']}": f"results/pareto_{s['hardware']}.parquet"
            for s in config["validation"]["sources"] if s.get("kind") == "frontier"}


def validation_archs(wc=None):
    """arch_ids chosen by the select_validation checkpoint (re-evaluated once it has run)."""
    import pandas as pd

    path = checkpoints.select_validation.get().output[0]
    return pd.read_parquet(path, columns=["arch_id"])["arch_id"].tolist()


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
