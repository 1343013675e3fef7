from ciprivacy.posthoc import derive_target
from ciprivacy.runtime import job_log

with job_log(snakemake.log[0]):
    derive_target(snakemake.input.unprotected, snakemake.output.model, snakemake.params.settings)
