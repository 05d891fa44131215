"""Script of rule eval_table: every evaluated model in one table."""

from paretolm.ops.logs import logged
from paretolm.stages import evaluate

sm = snakemake  # noqa: F821  (injected by Snakemake)
with logged(sm.log[0]):
    evaluate.collect(list(sm.input), sm.output[0])
