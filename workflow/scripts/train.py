"""Script of rule train: train one selected run from scratch."""

from pathlib import Path

from paretolm.ops.logs import logged
from paretolm.stages import train

sm = snakemake  # noqa: F821  (injected by Snakemake)
with logged(sm.log[0]):
    train.run(
        sm.params.part, run=sm.wildcards.run, archs=sm.input.archs, out_dir=Path(sm.output.log).parent, progress=True
    )
