from pathlib import Path

from ciprivacy.reporting.results import load_tidy
from ciprivacy.reporting.table_of import write_spec_table
from ciprivacy.runtime import end_job_process, job_log

with job_log(snakemake.log[0]):
    stem = str(Path(snakemake.output.csv).with_suffix(""))
    write_spec_table(snakemake.params.spec, load_tidy(snakemake.input.tidy), stem)
end_job_process()  # outputs written and closed: skip the interpreter teardown
