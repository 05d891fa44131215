"""Snakemake script of rule profile: latency and peak memory on one hardware target."""

from paretolm.profiling import run_profile
from paretolm.workflow import logged

with logged(snakemake.log[0]):  # noqa: F821  (injected by Snakemake)
    run_profile(
        hardware=snakemake.wildcards.hardware,  # noqa: F821
        samples=snakemake.input.samples,  # noqa: F821
        proxies=snakemake.input.proxies,  # noqa: F821
        params=snakemake.input.params,  # noqa: F821
        cache_dir=snakemake.config["profile"]["cache"],  # noqa: F821
        out=snakemake.output[0],  # noqa: F821
    )
