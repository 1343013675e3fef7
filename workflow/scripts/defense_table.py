from pathlib import Path

from ciprivacy.reporting.paper_tables import write_named_table
from ciprivacy.reporting.results import load_tidy
from ciprivacy.runtime import job_log

with job_log(snakemake.log[0]):
    dataset, arch = snakemake.params.pair
    stem = str(Path(snakemake.output.csv).with_suffix(""))
    write_named_table(load_tidy(snakemake.input.tidy), dataset, arch, stem)
