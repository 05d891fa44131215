"""Script of rule correlate: proxies against what training measured; frontiers and figures."""

from paretolm.ops.logs import logged
from paretolm.stages import correlate

sm = snakemake  # noqa: F821  (injected by Snakemake)
with logged(sm.log[0]):
    correlate.run(
        sm.params.part,
        eval_table=sm.input.eval_table,
        out=sm.output.table,
        frontiers=sm.output.frontiers,
        figures={
            "scatter": sm.output.scatter,
            "src": sm.output.src,
            "src_cost": sm.output.src_cost,
            "src_budget": sm.output.src_budget,
        },
    )
