from ciprivacy.posthoc import derive_target
from ciprivacy.runtime import end_job_process, job_log

with job_log(snakemake.log[0]):
    derive_target(snakemake.input.unprotected, snakemake.output.model, snakemake.params.settings)
end_job_process()  # outputs written and closed: skip the interpreter teardown (~1 s)
