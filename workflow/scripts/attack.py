from ciprivacy.attacks import run_attack
from ciprivacy.runtime import job_log

with job_log(snakemake.log[0]):
    run_attack(
        snakemake.params.scenario,
        snakemake.input.model,
        snakemake.input.data,
        snakemake.output.metrics,
        snakemake.output.samples,
        snakemake.params.settings,
        attacker_path=snakemake.output.get("attacker"),
        checkpoint=snakemake.params.checkpoint,
    )
