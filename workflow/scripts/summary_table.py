from ciprivacy.reporting import summarize
from ciprivacy.runtime import job_log

with job_log(snakemake.log[0]):
    summarize(
        snakemake.input.evaluations,
        snakemake.input.mi,
        snakemake.input.attacks,
        snakemake.output.csv,
        snakemake.output.md,
    )
