"""Script of rule profile: latency and peak memory on one hardware target (measured, imported,
asked of a server, or gathered from the shards)."""

from paretolm.ops.logs import logged
from paretolm.stages import profile

sm = snakemake  # noqa: F821  (injected by Snakemake)
with logged(sm.log[0]):
    profile.run(
        sm.params.part,
        hardware=sm.wildcards.hardware,
        space=sm.wildcards.space,
        samples=sm.input.samples,
        proxies=sm.input.proxies,
        cache_dir=sm.config["profile"]["cache"],
        out=sm.output[0],
        shards=list(sm.input.shards),
    )
