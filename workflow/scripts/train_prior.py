from ciprivacy.priors import train_prior
from ciprivacy.runtime import end_job_process, job_log

# device is not in params: changing it reruns nothing.
settings = {**snakemake.params.settings, "device": snakemake.config["device"]}
with job_log(snakemake.log[0]):
    train_prior(snakemake.input.data, snakemake.output.prior, settings, checkpoint=snakemake.params.checkpoint)
end_job_process()  # outputs written and closed: skip the interpreter teardown (~1 s)
