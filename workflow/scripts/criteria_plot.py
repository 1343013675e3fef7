from ciprivacy.reporting.paper_figures import criteria
from ciprivacy.reporting.results import load_tidy
from ciprivacy.runtime import job_log

with job_log(snakemake.log[0]):
    criteria(load_tidy(snakemake.input.tidy), snakemake.output.figure, snakemake.output.table)
