from ciprivacy.attacks import SCENARIOS
from ciprivacy.config import with_runtime
from ciprivacy.runtime import end_job_process, job_log
from ciprivacy.target_evaluation import ATTACK_OUTPUTS, evaluate_and_attack

i, o, p, config = snakemake.input, snakemake.output, snakemake.params, snakemake.config
# device, channels_last and query_cache_gb are not in params: changing them reruns nothing.
measure = {
    "evaluation": with_runtime(p.evaluation, config, "evaluation"),
    "mine": with_runtime(p.mine, config, "mine"),
    "outputs": {"evaluation": o.evaluation, "mi": o.mi, "per_image": o.per_image},
}
attacks = {
    s: {
        "settings": with_runtime(p[s], config, "attack", SCENARIOS.get(s).block),
        "outputs": {n: o[f"{s}:{n}"] for n in ATTACK_OUTPUTS if f"{s}:{n}" in o.keys()},
        "checkpoint": f"{p.checkpoints}/{s}.pt",
    }
    for s in p.scenarios
}
inputs = {n: i[n] for s in p.scenarios for n in SCENARIOS.get(s).inputs}
with job_log(snakemake.log[0]):
    evaluate_and_attack(i.model, i.data, measure, attacks, p.cache, inputs)
end_job_process()  # outputs written and closed: skip the interpreter teardown (~1 s)
