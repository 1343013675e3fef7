import logging

from ciprivacy.integrity import write_manifest
from ciprivacy.runtime import end_job_process, job_log

# The inputs are this run's final outputs and every per-target result it made.
with job_log(snakemake.log[0]):
    manifest = write_manifest(list(snakemake.input), snakemake.output[0])
    logging.getLogger("ciprivacy").info("%s: recorded %d files", snakemake.output[0], len(manifest["files"]))
end_job_process()  # outputs written and closed: skip the interpreter teardown
