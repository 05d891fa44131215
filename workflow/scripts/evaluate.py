"""Script of rule evaluate: evaluate one trained model."""

from paretolm.logs import logged
from paretolm.stages import evaluate

sm = snakemake  # noqa: F821  (injected by Snakemake)
with logged(sm.log[0]):
    evaluate.run(sm.params.part, arch_id=sm.wildcards.arch_id, archs=sm.input.archs, model_dir=sm.input.model,
                 train_summary=sm.input.summary, out=sm.output[0], cache_dir=sm.config["profile"]["cache"])
