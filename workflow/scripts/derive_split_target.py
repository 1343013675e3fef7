from ciprivacy.recut import recut_target
from ciprivacy.runtime import end_job_process, job_log

with job_log(snakemake.log[0]):
    recut_target(snakemake.input.base, snakemake.output.model, snakemake.params.settings)
end_job_process()  # outputs written and closed: skip the interpreter teardown (~1 s)
