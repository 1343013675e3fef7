import logging

from ciprivacy.reporting.paper_figures import figure2_depth
from ciprivacy.reporting.results import load_tidy
from ciprivacy.runtime import end_job_process, job_log

with job_log(snakemake.log[0]):
    if not figure2_depth(load_tidy(snakemake.input.tidy), snakemake.output.figure):
        logging.getLogger("ciprivacy").warning("Figure 2: no depth runs; wrote a 'no depth runs' panel")
end_job_process()  # outputs written and closed: skip the interpreter teardown
