from ciprivacy.attacks import run_attack
from ciprivacy.runtime import job_log
from ciprivacy.settings import with_runtime

# device, channels_last and query_cache_gb are not in params: changing them reruns nothing.
# The compensation attack runs with the black-box attack's settings.
scenario = "blackbox" if snakemake.params.scenario == "compensation" else snakemake.params.scenario
settings = with_runtime(snakemake.params.settings, snakemake.config, "attack", scenario)

with job_log(snakemake.log[0]):
    run_attack(
        snakemake.params.scenario,
        snakemake.input.model,
        snakemake.input.data,
        snakemake.output.metrics,
        snakemake.output.samples,
        settings,
        attacker_path=snakemake.output.get("attacker"),
        checkpoint=snakemake.params.checkpoint,
    )
