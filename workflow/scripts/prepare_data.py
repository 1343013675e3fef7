from ciprivacy.data import prepare_dataset
from ciprivacy.runtime import job_log

with job_log(snakemake.log[0]):
    prepare_dataset(snakemake.wildcards.dataset, snakemake.params.settings, snakemake.output.data)
