from ciprivacy.config import with_runtime
from ciprivacy.runtime import end_job_process, job_log
from ciprivacy.target import train_target

# device and channels_last are not in params: changing them reruns nothing.
settings = with_runtime(snakemake.params.settings, snakemake.config, "target")

with job_log(snakemake.log[0]):
    train_target(
        snakemake.input.data,
        snakemake.output.model,
        settings,
        checkpoint=snakemake.params.checkpoint,
    )
end_job_process()  # outputs written and closed: skip the interpreter teardown (~1 s)
