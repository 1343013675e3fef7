from ciprivacy.reporting.provenance import write_provenance
from ciprivacy.runtime import end_job_process, job_log

with job_log(snakemake.log[0]):
    write_provenance(snakemake.params.runs, snakemake.output.json)
end_job_process()  # outputs written and closed: skip the interpreter teardown
