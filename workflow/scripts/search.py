"""Script of rule search: the configured search method on one hardware target."""

from paretolm.logs import logged
from paretolm.stages import search

sm = snakemake  # noqa: F821  (injected by Snakemake)
with logged(sm.log[0]):
    search.run(
        sm.params.part,
        hardware=sm.wildcards.hardware,
        profile=sm.input.profile,
        space_file=sm.input.space,
        cache_dir=sm.config["profile"]["cache"],
        frontier=sm.output.frontier,
        archive=sm.output.archive,
        plot=sm.output.get("plot"),
    )
