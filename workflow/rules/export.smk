# After the validation half: the trained frontier of a target as Hugging Face folders.


rule export:
    """The trained frontier of {hardware} -> results/export/{hardware}/<rank>-<arch_id>/ (weights,
    tokenizer, model card) and index.json."""
    input:
        # the frontier, the selected table, and each trained frontier row's model and evaluation
        # (known once select_validation has run)
        unpack(
            lambda wc: stages.stage("export").inputs(
                config, wc.hardware, checkpoints.select_validation.get().output[0]
            )
        ),
    output:
        directory("results/export/{hardware}"),
    log:
        "logs/export/{hardware}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        part=config_part("export"),
    script:
        "../scripts/export.py"
