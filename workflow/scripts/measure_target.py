from ciprivacy.config import with_runtime
from ciprivacy.measure import evaluate_target, measure_mi
from ciprivacy.runtime import end_job_process, job_log

i, o, p = snakemake.input, snakemake.output, snakemake.params
# device and channels_last are not in params: changing them reruns nothing.
evaluation = with_runtime(p.evaluation, snakemake.config, "evaluation")
mine = with_runtime(p.mine, snakemake.config, "mine")
with job_log(snakemake.log[0]):
    evaluate_target(i.model, i.data, o.evaluation, evaluation, per_image_path=o.per_image)
    measure_mi(i.model, i.data, o.mi, mine)
end_job_process()  # outputs written and closed: skip the interpreter teardown (~1 s)
