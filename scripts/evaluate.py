"""Snakemake script of rules evaluate and eval_table."""

from paretolm.evaluation import run_eval_table, run_evaluate
from paretolm.workflow import logged

sm = snakemake  # noqa: F821  (injected by Snakemake)
with logged(sm.log[0]):
    if sm.rule == "eval_table":
        run_eval_table(list(sm.input), sm.output[0])
    else:
        from pathlib import Path

        run_evaluate(sm.wildcards.arch_id, sm.input.archs, Path(sm.input.weights).parent,
                     sm.input.params, sm.output[0])
