"""Snakemake script of rule search: LTS's evolutionary search on one hardware target."""

from paretolm.search import run_search
from paretolm.workflow import logged

with logged(snakemake.log[0]):  # noqa: F821  (injected by Snakemake)
    run_search(
        hardware=snakemake.wildcards.hardware,  # noqa: F821
        profile=snakemake.input.profile,  # noqa: F821
        space_file=snakemake.input.space,  # noqa: F821
        params=snakemake.input.params,  # noqa: F821
        cache_dir=snakemake.config["profile"]["cache"],  # noqa: F821
        frontier=snakemake.output.frontier,  # noqa: F821
        archive=snakemake.output.archive,  # noqa: F821
        plot=snakemake.output.get("plot"),  # noqa: F821
    )
