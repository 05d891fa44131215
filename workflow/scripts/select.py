"""Script of checkpoint select_validation: the architectures the validation half trains."""

from paretolm.ops.logs import logged
from paretolm.stages import select

sm = snakemake  # noqa: F821  (injected by Snakemake)
with logged(sm.log[0]):
    frontiers = {k: v for k, v in sm.input.items() if k.startswith("frontier_")}
    select.run(sm.params.part, frontiers=frontiers, out=sm.output[0])
