from pathlib import Path

from ciprivacy.reporting.ablation import write_ablation_table
from ciprivacy.reporting.results import load_tidy
from ciprivacy.runtime import job_log

with job_log(snakemake.log[0]):
    dataset, arch = snakemake.params.pair
    write_ablation_table(
        load_tidy(snakemake.input.tidy), dataset, arch, str(Path(snakemake.output.csv).with_suffix(""))
    )
