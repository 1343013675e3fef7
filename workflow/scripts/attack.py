from ciprivacy.attacks import SCENARIOS, run_attack
from ciprivacy.config import with_runtime
from ciprivacy.runtime import end_job_process, job_log

# device, channels_last and query_cache_gb are not in params: changing them reruns nothing.
# Each scenario reads its attacks block (the compensation attack the black-box one's).
scenario = snakemake.wildcards.scenario
entry = SCENARIOS.get(scenario)
settings = with_runtime(snakemake.params.settings, snakemake.config, "attack", entry.block)

with job_log(snakemake.log[0]):
    run_attack(
        scenario,
        snakemake.input.model,
        snakemake.input.data,
        snakemake.output.metrics,
        snakemake.output.samples,
        settings,
        attacker_path=snakemake.output.get("attacker"),
        checkpoint=snakemake.params.checkpoint,
        inputs={name: snakemake.input[name] for name in entry.inputs},
        per_image_path=snakemake.output.per_image,
    )
end_job_process()  # outputs written and closed: skip the interpreter teardown (~1 s)
