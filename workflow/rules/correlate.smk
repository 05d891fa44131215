# Validation half, stage 4: proxies vs measured perplexity / accuracy, frontiers, figures.


rule correlate:
    """SRC / Kendall / top-k of every proxy, d_avg and hypervolumes, report figures."""
    input:
        eval_table="results/eval.parquet",
        trained=trained_inputs("validation"),
    output:
        table="results/correlation.parquet",
        frontiers="results/validation/frontiers.parquet",
        scatter=report(
            "results/figures/proxy_vs_ppl.png",
            caption="../report/proxy_vs_ppl.rst",
            category="Validation",
        ),
        src=report(
            "results/figures/src_per_proxy.png",
            caption="../report/src_per_proxy.rst",
            category="Validation",
        ),
        src_cost=report(
            "results/figures/src_vs_cost.png",
            caption="../report/src_vs_cost.rst",
            category="Validation",
        ),
        src_budget=report(
            "results/figures/src_vs_budget.png",
            caption="../report/src_vs_budget.rst",
            category="Validation",
        ),
    log:
        "logs/correlate.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        part=config_part("correlate"),
    script:
        "../scripts/correlate.py"


rule validation:
    """Target of the validation half: `snakemake --cores all validation`."""
    input:
        "results/correlation.parquet",
        "results/validation/frontiers.parquet",
