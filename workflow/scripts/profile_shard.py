"""Script of rule profile_shard: one shard of the profile stage (profile.shards > 1)."""

from paretolm.ops.logs import logged
from paretolm.stages import profile

sm = snakemake  # noqa: F821  (injected by Snakemake)
with logged(sm.log[0]):
    profile.run_shard(
        sm.params.part,
        hardware=sm.wildcards.hardware,
        space=sm.wildcards.space,
        samples=sm.input.samples,
        cache_dir=sm.config["profile"]["cache"],
        shard=int(sm.wildcards.shard),
        shards=int(sm.wildcards.shards),
        out=sm.output[0],
    )
