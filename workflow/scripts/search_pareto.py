"""Script of rule pareto: the configured method's frontier as results/pareto_{hardware}."""

from paretolm.ops.logs import logged
from paretolm.stages import search

sm = snakemake  # noqa: F821  (injected by Snakemake)
with logged(sm.log[0]):
    search.publish(sm.input.frontier, sm.output.frontier, sm.input.get("plot"), sm.output.get("plot"))
