# SiftFunnel reproduction: data -> targets -> attacks -> measures -> tables and figures.
# Full paper-scale run:  snakemake --cores all
# Demo on a CPU:         snakemake --cores all --configfile presets/demo.yaml
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/target.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
