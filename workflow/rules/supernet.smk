# The weight-sharing supernet of a space, read by the supernet_loss proxy (docs/proxies.md).


rule supernet:
    """Train the supernet of one space with the sandwich rule (resumes from its .checkpoint)."""
    input:
        space=space_yaml,
    output:
        directory(f"{SUPERNET.dir}/{{space}}"),
    log:
        "logs/supernet/{space}.log",
    conda:
        ENV
    threads: SUPERNET.threads
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        part=config_part("supernet"),
    script:
        "../scripts/supernet.py"
