"""Script of rule export: the trained frontier of one hardware target as Hugging Face folders."""

from paretolm.ops.logs import logged
from paretolm.stages import export

sm = snakemake  # noqa: F821  (injected by Snakemake)
with logged(sm.log[0]):
    export.run(
        sm.params.part,
        hardware=sm.wildcards.hardware,
        frontier=sm.input.frontier,
        archs=sm.input.archs,
        models=list(sm.input.models),
        evals=list(sm.input.evals),
        out=sm.output[0],
    )
