from ciprivacy.reporting.provenance import write_provenance
from ciprivacy.runtime import job_log

with job_log(snakemake.log[0]):
    write_provenance(snakemake.params.runs, snakemake.output.json)
