from ciprivacy.reporting.paper_figures import criteria, violations_path
from ciprivacy.reporting.results import load_tidy
from ciprivacy.runtime import end_job_process, job_log

# criteria() also writes <table stem>_bound_violations.csv next to the table; a rule that
# declares it as output `violations` must name that same path.
declared = getattr(snakemake.output, "violations", None)
if declared is not None and str(violations_path(snakemake.output.table)) != declared:
    raise ValueError(f"output violations must be {violations_path(snakemake.output.table)}, not {declared}")

with job_log(snakemake.log[0]):
    criteria(load_tidy(snakemake.input.tidy), snakemake.output.figure, snakemake.output.table)
end_job_process()  # outputs written and closed: skip the interpreter teardown
