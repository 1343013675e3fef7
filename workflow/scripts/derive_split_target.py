from ciprivacy.recut import recut_target
from ciprivacy.runtime import job_log

with job_log(snakemake.log[0]):
    recut_target(snakemake.input.base, snakemake.output.model, snakemake.params.settings)
