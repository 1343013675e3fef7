from ciprivacy.reporting import summarize
from ciprivacy.runtime import end_job_process, job_log

with job_log(snakemake.log[0]):
    summarize(
        snakemake.input.evaluations,
        snakemake.input.mi,
        snakemake.input.attacks,
        snakemake.output.csv,
        snakemake.output.md,
    )
end_job_process()  # outputs written and closed: skip the interpreter teardown
