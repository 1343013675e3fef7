# job_grouping: target (config.yaml): a target's measurements and attacks in one job
# (ciprivacy.target_evaluation), each part cached so that a changed setting recomputes only its
# part. A rule's outputs are fixed, and targets differ in the scenarios that attack them: one
# rule per set of scenarios (PLAN.scenario_sets), each limited to its targets by the protocol
# wildcard's constraint (PLAN.only_targets). The first is evaluate_target, the others
# evaluate_target_2, _3, ...; all log and time under evaluate_target.

if GROUPED:
    for _i, (_scenarios, _targets) in enumerate(
        PLAN.scenario_sets(EXPERIMENTS, SEEDS).items()
    ):

        rule:
            name:
                PLAN.GROUPED_RULE if _i == 0 else f"{PLAN.GROUPED_RULE}_{_i + 1}"
            input:
                unpack(lambda wc, s=_scenarios: grouped_attack_inputs(wc, s)),
                model=f"{TARGET_DIR}/model.pt",
                data=f"{OUT}/data/{{dataset}}.pt",
            output:
                **grouped_attack_outputs(_scenarios),
                evaluation=f"{TARGET_DIR}/evaluation.json",
                mi=f"{TARGET_DIR}/mi.json",
                per_image=f"{TARGET_DIR}/per_image.csv",
            log:
                f"{OUT}/logs/{PLAN.GROUPED_RULE}/{{protocol}}/{TARGET}.log",
            benchmark:
                f"{OUT}/benchmarks/{PLAN.GROUPED_RULE}/{{protocol}}/{TARGET}.tsv"
            wildcard_constraints:
                protocol=PLAN.only_targets(OUT, _targets),
            conda:
                "../../envs/pipeline.yaml"
            threads: config["threads"]
            resources:
                gpu=GPU_JOB,
                mem_mb=16000,
                runtime=retry_runtime(90 + 120 * len(_scenarios)),
            params:
                # One entry per scenario, named by it: its attack settings.
                **{
                    s: (
                        lambda wc, s=s: S.attack_settings(
                            PCONFIG[wc.protocol], s, int(wc.seed)
                        )
                    )
                    for s in _scenarios
                },
                scenarios=list(_scenarios),
                evaluation=evaluation_params,
                mine=mine_params,
                # Not outputs: the parts' cache, and the checkpoints a killed attack resumes from.
                cache=f"{OUT}/cache/{{protocol}}/{TARGET}",
                checkpoints=f"{OUT}/checkpoints/{{protocol}}/{TARGET}",
            script:
                "../scripts/evaluate_target.py"
