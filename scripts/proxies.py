"""Snakemake script of rule proxies: score every sampled architecture."""

from paretolm.workflow import logged, run_proxies

with logged(snakemake.log[0]):  # noqa: F821  (injected by Snakemake)
    run_proxies(
        samples=snakemake.input.samples,  # noqa: F821
        params=snakemake.input.params,  # noqa: F821
        out=snakemake.output[0],  # noqa: F821
    )
