from ciprivacy.measure import evaluate_target, measure_mi
from ciprivacy.runtime import job_log

i, o, p = snakemake.input, snakemake.output, snakemake.params
with job_log(snakemake.log[0]):
    evaluate_target(i.model, i.data, o.evaluation, p.evaluation)
    measure_mi(i.model, i.data, o.mi, p.mine)
