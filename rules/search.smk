SEARCH_OUTPUT = {
    "frontier": "results/pareto_{hardware}.parquet",
    "archive": "results/search/{hardware}/archive.parquet",
}
if config["search"]["plot"]:
    SEARCH_OUTPUT["plot"] = report(
        "results/pareto_{hardware}.png", caption="../report/pareto.rst", category="Search"
    )


rule search:
    """LTS's evolutionary search on one hardware target: archive of every candidate + frontier."""
    input:
        profile=f"results/profile/{{hardware}}/{SEARCH_SPACE}.parquet",
        space=str(wf.space_file(config, SEARCH_SPACE)),
        params=checked_search_params,
    output:
        **SEARCH_OUTPUT,
    log:
        "logs/search/{hardware}.log",
    threads: hw_threads
    resources:
        mem_mb=hw_resource("mem_mb", 4000),
        runtime=hw_resource("runtime", 60),
        slurm_partition=hw_slurm("partition"),
        constraint=hw_slurm("constraint"),
        gres=hw_slurm("gres"),
    conda:
        ENV
    script:
        "../scripts/search.py"
