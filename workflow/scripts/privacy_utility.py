from ciprivacy.reporting.paper_figures import privacy_utility
from ciprivacy.reporting.results import load_tidy
from ciprivacy.runtime import end_job_process, job_log

w = snakemake.wildcards
with job_log(snakemake.log[0]):
    privacy_utility(load_tidy(snakemake.input.tidy), w.dataset, w.arch, snakemake.output.figure)
end_job_process()  # outputs written and closed: skip the interpreter teardown
