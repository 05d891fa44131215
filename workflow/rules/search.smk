SEARCH_OUTPUT = {
    "frontier": "results/pareto_{hardware}.parquet",
    "archive": "results/search/{hardware}/archive.parquet",
}
if config["search"]["plot"]:
    SEARCH_OUTPUT["plot"] = report(
        "results/pareto_{hardware}.png",
        caption="../report/pareto.rst",
        category="Search",
    )


rule search:
    """The configured search method on one hardware target: archive of every candidate + frontier."""
    input:
        profile=f"results/profile/{{hardware}}/{SEARCH_SPACE}.parquet",
        space=str(space_file(config, SEARCH_SPACE)),
        available=hardware_available,
    output:
        **SEARCH_OUTPUT,
    log:
        "logs/search/{hardware}.log",
    conda:
        ENV
    threads: hw_threads
    resources:
        mem_mb=hw_resource("mem_mb", 4000),
        runtime=hw_resource("runtime", 60),
        slurm_partition=hw_slurm("partition"),
        constraint=hw_slurm("constraint"),
        gres=hw_slurm("gres"),
    params:
        part=config_part("search"),
    script:
        "../scripts/search.py"
