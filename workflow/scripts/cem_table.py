from pathlib import Path

from ciprivacy.reporting.cem_table import write_cem_table
from ciprivacy.reporting.results import load_tidy
from ciprivacy.runtime import job_log

with job_log(snakemake.log[0]):
    dataset, arch = snakemake.params.pair
    write_cem_table(load_tidy(snakemake.input.tidy), dataset, arch, str(Path(snakemake.output.csv).with_suffix("")))
