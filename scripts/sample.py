"""Snakemake script of rule sample: draw the architectures of one search space."""

from paretolm.workflow import logged, run_sample

with logged(snakemake.log[0]):  # noqa: F821  (injected by Snakemake)
    run_sample(
        space=snakemake.wildcards.space,  # noqa: F821
        space_file=snakemake.input.space,  # noqa: F821
        params=snakemake.input.params,  # noqa: F821
        out=snakemake.output[0],  # noqa: F821
    )
