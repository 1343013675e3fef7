from ciprivacy.measure import evaluate_target
from ciprivacy.runtime import job_log

with job_log(snakemake.log[0]):
    evaluate_target(snakemake.input.model, snakemake.input.data, snakemake.output.evaluation, snakemake.params.settings)
