"""Script of rule search: one search method on one hardware target."""

from paretolm.ops.logs import logged
from paretolm.stages import search

sm = snakemake  # noqa: F821  (injected by Snakemake)
with logged(sm.log[0]):
    search.run(
        sm.params.part,
        method=sm.wildcards.method,
        hardware=sm.wildcards.hardware,
        profile=sm.input.profile,
        space_file=sm.input.space,
        cache_dir=sm.config["profile"]["cache"],
        frontier=sm.output.frontier,
        archive=sm.output.archive,
        report=sm.output.report,
        plot=sm.output.get("plot"),
        convergence=sm.output.convergence,
    )
