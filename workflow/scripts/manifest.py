import logging

from ciprivacy.integrity import results_files, write_manifest
from ciprivacy.runtime import job_log

# The inputs are the run's final outputs (so this job runs last); every other result file under
# the results folder is recorded too: data, models, metrics, samples (not logs or benchmarks).
with job_log(snakemake.log[0] if snakemake.log else None):
    paths = [*snakemake.input, *results_files(snakemake.params.results)]
    manifest = write_manifest(paths, snakemake.output[0])
    logging.getLogger("ciprivacy").info("%s: recorded %d files", snakemake.output[0], len(manifest["files"]))
