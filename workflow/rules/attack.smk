# Two rules serve every threat scenario (ciprivacy.attacks.SCENARIOS, plug-ins included): one
# for the attacks that optimise inputs or latents (rMLE, GLASS), one for those that train an
# attacker network, which they also write (the inverse networks). One job per target and
# scenario; under job_grouping: target a target's attacks run in one job (evaluate.smk).
if not GROUPED:

    rule attack:
        input:
            unpack(attack_inputs),
            model=f"{TARGET_DIR}/model.pt",
            data=f"{OUT}/data/{{dataset}}.pt",
        output:
            metrics=f"{ATTACK_DIR}/metrics.json",
            samples=f"{ATTACK_DIR}/samples.pt",
            # Each attacked test image's scores: the reports bootstrap their intervals from them.
            per_image=f"{ATTACK_DIR}/per_image.csv",
        log:
            f"{OUT}/logs/attack/{{protocol}}/{TARGET}/{{scenario}}.log",
        benchmark:
            f"{OUT}/benchmarks/attack/{{protocol}}/{TARGET}/{{scenario}}.tsv"
        wildcard_constraints:
            scenario=_alternatives(
                s for s in SCENARIO_NAMES if PLAN.attack_rule(s) == "attack"
            ),
        conda:
            "../../envs/pipeline.yaml"
        threads: config["threads"]
        resources:
            gpu=GPU_JOB,
            runtime=retry_runtime(60),
        params:
            settings=attack_params,
            # Not an output: a killed job leaves it behind and the rerun resumes from it.
            checkpoint=f"{OUT}/checkpoints/{{protocol}}/{TARGET}/{{scenario}}.pt",
        script:
            "../scripts/attack.py"

    use rule attack as attack_with_model with:
        output:
            metrics=f"{ATTACK_DIR}/metrics.json",
            samples=f"{ATTACK_DIR}/samples.pt",
            # Each attacked test image's scores: the reports bootstrap their intervals from them.
            per_image=f"{ATTACK_DIR}/per_image.csv",
            attacker=f"{ATTACK_DIR}/attacker.pt",
        log:
            f"{OUT}/logs/attack_with_model/{{protocol}}/{TARGET}/{{scenario}}.log",
        benchmark:
            f"{OUT}/benchmarks/attack_with_model/{{protocol}}/{TARGET}/{{scenario}}.tsv"
        wildcard_constraints:
            scenario=_alternatives(
                s for s in SCENARIO_NAMES if PLAN.attack_rule(s) == "attack_with_model"
            ),
        resources:
            gpu=GPU_JOB,
            runtime=retry_runtime(120),


# Failure baselines (ciprivacy.metrics.baselines): reconstructions that carry no information
# about x (rMLE's start, the auxiliary mean image, a random auxiliary image, the GLASS prior's
# mean image), scored on the test split as each attack on the dataset scores. One CPU job per
# protocol and dataset; every table and the failed marks compare the attacks with them.
rule failure_baselines:
    input:
        unpack(baseline_inputs),
        data=f"{OUT}/data/{{dataset}}.pt",
    output:
        scores=f"{BASELINE_DIR}/baselines.json",
        per_image=f"{BASELINE_DIR}/per_image.csv",
    log:
        f"{OUT}/logs/failure_baselines/{{protocol}}/{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/failure_baselines/{{protocol}}/{{dataset}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        runtime=retry_runtime(60),
    params:
        settings=baseline_params,
    script:
        "../scripts/failure_baselines.py"
