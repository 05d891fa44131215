"""Script of rule evaluate: evaluate one trained model."""

from paretolm.ops.logs import logged
from paretolm.stages import evaluate

sm = snakemake  # noqa: F821  (injected by Snakemake)
with logged(sm.log[0]):
    evaluate.run(
        sm.params.part,
        run=sm.wildcards.run,
        archs=sm.input.archs,
        model_dir=sm.input.model,
        train_summary=sm.input.summary,
        budgets=sm.input.budgets,
        out=sm.output[0],
        cache_dir=sm.config["profile"]["cache"],
    )
