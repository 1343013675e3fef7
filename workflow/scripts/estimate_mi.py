from ciprivacy.measure import measure_mi
from ciprivacy.runtime import job_log

with job_log(snakemake.log[0]):
    measure_mi(snakemake.input.model, snakemake.input.data, snakemake.output.mi, snakemake.params.settings)
