"""Script of rule supernet: train the weight-sharing supernet of one space."""

from paretolm.ops.logs import logged
from paretolm.stages import supernet

sm = snakemake  # noqa: F821  (injected by Snakemake)
with logged(sm.log[0]):
    supernet.run(sm.params.part, space=sm.wildcards.space, space_file=sm.input.space, out=sm.output[0], progress=True)
