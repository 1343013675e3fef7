from ciprivacy.reporting.claims import write_claims
from ciprivacy.reporting.results import load_tidy
from ciprivacy.runtime import job_log

o = snakemake.output
with job_log(snakemake.log[0]):
    write_claims(load_tidy(snakemake.input.tidy), o.csv, o.md, o.html)
