"""Script of rule proxies: score every sampled architecture."""

from paretolm.ops.logs import logged
from paretolm.stages import proxies

sm = snakemake  # noqa: F821  (injected by Snakemake)
with logged(sm.log[0]):
    proxies.run(sm.params.part, space=sm.wildcards.space, samples=sm.input.samples, out=sm.output[0])
