from ciprivacy.metrics.baselines import write_baselines
from ciprivacy.runtime import end_job_process, job_log

i, o = snakemake.input, snakemake.output
with job_log(snakemake.log[0]):
    write_baselines(i.data, o.scores, o.per_image, snakemake.params.settings, prior_path=i.get("prior"))
end_job_process()  # outputs written and closed: skip the interpreter teardown (~1 s)
