"""paretolm: hardware-aware, training-free architecture search for Transformer language models.

    snakemake --cores all results/pareto_cpu.parquet     # the default target
    snakemake --cores 32 results/pareto_arm.parquet      # any configured hardware target

Stages (one rule file each): sample -> proxies -> profile/{hardware} -> search/{hardware}.
See docs/workflow.md.
"""

from snakemake.utils import min_version, validate

min_version("8.20")


configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


rule all:
    input:
        expand("results/pareto_{hardware}.parquet", hardware=config["targets"]),
    default_target: True


include: "rules/common.smk"
include: "rules/sample.smk"
include: "rules/proxies.smk"
include: "rules/profile.smk"
include: "rules/search.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/correlate.smk"
