from ciprivacy.runtime import job_log
from ciprivacy.target import train_target

with job_log(snakemake.log[0]):
    train_target(
        snakemake.input.data,
        snakemake.output.model,
        snakemake.params.settings,
        checkpoint=snakemake.params.checkpoint,
    )
