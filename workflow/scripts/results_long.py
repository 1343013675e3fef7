from ciprivacy.reporting.results import write_tidy
from ciprivacy.runtime import end_job_process, job_log

i = snakemake.input
with job_log(snakemake.log[0]):
    write_tidy(i.evaluations, i.mi, i.attacks, i.models, snakemake.output.csv, baseline_files=i.baselines)
end_job_process()  # outputs written and closed: skip the interpreter teardown (~1 s)
