from ciprivacy.config import with_runtime
from ciprivacy.data import prepare_dataset
from ciprivacy.runtime import end_job_process, job_log

dataset = snakemake.wildcards.dataset
# Where the raw data lies (root, download) is not in params: moving it reruns nothing.
settings = with_runtime(snakemake.params.settings, snakemake.config, "dataset", dataset)
with job_log(snakemake.log[0]):
    prepare_dataset(dataset, settings, snakemake.output.data)
end_job_process()  # outputs written and closed: skip the interpreter teardown (~1 s)
