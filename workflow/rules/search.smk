# One search method on one hardware target (wildcard method: any name in paretolm.search.methods.METHODS),
# so several methods can be compared on one target in one run:
#   snakemake --cores all results/search/{lts,random,nsga2}/cpu/frontier.parquet
# results/pareto_{hardware}.parquet is the configured method's (search.method) frontier.

from paretolm.search.methods import METHODS

SEARCH_OUTPUT = {
    "archive": "results/search/{method}/{hardware}/archive.parquet",
    "frontier": "results/search/{method}/{hardware}/frontier.parquet",
    "report": "results/search/{method}/{hardware}/report.json",
    "convergence": "results/search/{method}/{hardware}/hypervolume.png",
}
if config["search"]["plot"]:
    SEARCH_OUTPUT["plot"] = "results/search/{method}/{hardware}/frontier.png"


rule search:
    """One search method on one hardware target: archive of every candidate, frontier, report."""
    input:
        profile=search_profile,
        space=search_space,
        available=hardware_available,
        runs=runtime_runs_space,
        trained=trained_inputs("proxies"),
    output:
        **SEARCH_OUTPUT,
    log:
        "logs/search/{method}/{hardware}.log",
    wildcard_constraints:
        method="|".join(METHODS.names()),
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


PARETO_INPUT = {
    "frontier": f"results/search/{config['search']['method']}/{{hardware}}/frontier.parquet"
}
PARETO_OUTPUT = {"frontier": "results/pareto_{hardware}.parquet"}
if config["search"]["plot"]:
    PARETO_INPUT["plot"] = (
        f"results/search/{config['search']['method']}/{{hardware}}/frontier.png"
    )
    PARETO_OUTPUT["plot"] = report(
        "results/pareto_{hardware}.png",
        caption="../report/pareto.rst",
        category="Search",
    )


rule pareto:
    """The frontier of the configured method (search.method) on one hardware target."""
    input:
        **PARETO_INPUT,
    output:
        **PARETO_OUTPUT,
    log:
        "logs/search/pareto_{hardware}.log",
    localrule: True
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/search_pareto.py"
