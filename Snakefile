# SiftFunnel reproduction: data -> targets -> attacks -> measures -> tables and figures.
# Full paper-scale run:  snakemake --cores all --resources gpu=<number of GPUs>
#                        (or snakemake --profile profiles/local); without a gpu limit every
#                        GPU job starts at once on the same device
# Demo on a CPU:         snakemake --cores all --configfile presets/demo.yaml
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/target.smk"
include: "workflow/rules/prior.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/integrity.smk"


rule all:
    default_target: True
    input:
        lambda wc: final_outputs(),
        f"{SUMMARY}/manifest.json",
