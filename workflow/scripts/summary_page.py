from ciprivacy.reporting.claims import write_claims
from ciprivacy.reporting.comparison import write_comparison
from ciprivacy.reporting.results import load_tidy
from ciprivacy.runtime import end_job_process, job_log

WRITERS = {"claims": write_claims, "paper_comparison": write_comparison}
o = snakemake.output
with job_log(snakemake.log[0]):
    WRITERS[snakemake.wildcards.page](load_tidy(snakemake.input.tidy), o.csv, o.md, o.html)
end_job_process()  # outputs written and closed: skip the interpreter teardown
