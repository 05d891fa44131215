"""Snakemake script of rule correlate."""

from paretolm.correlation import run_correlate
from paretolm.workflow import logged

sm = snakemake  # noqa: F821  (injected by Snakemake)
with logged(sm.log[0]):
    run_correlate(sm.input.eval_table, sm.input.params, sm.output.table, sm.output.frontiers,
                  figures={"scatter": sm.output.scatter, "src": sm.output.src,
                           "src_cost": sm.output.src_cost})
