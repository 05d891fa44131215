"""Snakemake script of the checkpoint select_validation and of rule train."""

from paretolm.training import run_select, run_train
from paretolm.workflow import logged

sm = snakemake  # noqa: F821  (injected by Snakemake)
with logged(sm.log[0]):
    if sm.rule == "select_validation":
        frontiers = {k: v for k, v in sm.input.items() if k.startswith("frontier_")}
        run_select(sm.input.params, sm.output[0], inputs=frontiers, input_files=list(frontiers.values()))
    else:
        from pathlib import Path

        run_train(sm.wildcards.arch_id, sm.input.archs, sm.input.params,
                  Path(sm.output.log).parent, progress=True)
