# Validation half, stage 3: proxies vs measured perplexity / accuracy, frontiers, figures.


rule correlate:
    """SRC / Kendall / top-k of every proxy, d_avg and hypervolumes, report figures."""
    input:
        eval_table="results/eval.parquet",
        params=f"{VAL_PARAMS}/correlate.json",
    output:
        table="results/correlation.parquet",
        frontiers="results/validation/frontiers.parquet",
        scatter=report("results/figures/proxy_vs_ppl.png", caption="../report/proxy_vs_ppl.rst",
                       category="Validation"),
        src=report("results/figures/src_per_proxy.png", caption="../report/src_per_proxy.rst",
                   category="Validation"),
        src_cost=report("results/figures/src_vs_cost.png", caption="../report/src_vs_cost.rst",
                        category="Validation"),
    log:
        "logs/correlate.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    script:
        "../scripts/correlate.py"


rule validation:
    """Target of the validation half: `snakemake --cores all validation`."""
    input:
        "results/correlation.parquet",
        "results/validation/frontiers.parquet",
