"""Script of rule sample: draw the architectures of one search space."""

from paretolm.ops.logs import logged
from paretolm.stages import sample

sm = snakemake  # noqa: F821  (injected by Snakemake)
with logged(sm.log[0]):
    sample.run(sm.params.part, space=sm.wildcards.space, space_file=sm.input.space, out=sm.output[0])
