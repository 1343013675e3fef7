rule train_target:
    input:
        data=f"{OUT}/data/{{dataset}}.pt",
    output:
        model=f"{TARGET_DIR}/model.pt",
    log:
        f"{OUT}/logs/train_target/{{protocol}}/{TARGET}.log",
    benchmark:
        f"{OUT}/benchmarks/train_target/{{protocol}}/{TARGET}.tsv"
    wildcard_constraints:
        defense="(?!(" + "|".join(POSTHOC) + ")$)[A-Za-z0-9_]+(\\+cem)?",
    # Models before attacks: every target's attacks wait for its model, and ending with
    # attacks, which are shorter, leaves fewer cores idle at the end.
    priority: 5
    conda:
        "../../envs/pipeline.yaml"
    threads: config["threads"]
    resources:
        gpu=GPU_JOB,
        runtime=retry_runtime(240),
    params:
        settings=train_params,
        # Not an output: a killed job leaves it behind and the rerun resumes from it.
        checkpoint=f"{OUT}/checkpoints/{{protocol}}/{TARGET}/target.pt",
    script:
        "../scripts/train_target.py"


# Post-hoc defenses take the unprotected model; every other defense trains its own.
ruleorder: derive_posthoc_target > train_target


# Copying weights is seconds of work: on a cluster it runs where Snakemake runs, not as a job.
localrules:
    derive_posthoc_target,
    derive_split_target,


rule derive_posthoc_target:
    input:
        unprotected=f"{OUT}/{{protocol}}/targets/{{dataset}}/{{arch}}/unprotected/seed{{seed}}/model.pt",
    output:
        model=f"{TARGET_DIR}/model.pt",
    log:
        f"{OUT}/logs/derive_posthoc_target/{{protocol}}/{TARGET}.log",
    benchmark:
        f"{OUT}/benchmarks/derive_posthoc_target/{{protocol}}/{TARGET}.tsv"
    wildcard_constraints:
        defense="|".join(POSTHOC),
    conda:
        "../../envs/pipeline.yaml"
    params:
        settings=train_params,
    script:
        "../scripts/derive_posthoc_target.py"


# Split-point variants of an architecture trained anyway (cnn_split1 beside cnn): one training,
# cut at each depth (ciprivacy.recut).
ruleorder: derive_split_target > train_target


rule derive_split_target:
    input:
        base=recut_base_model,
    output:
        model=f"{OUT}/{{protocol}}/targets/{{recut}}/unprotected/seed{{seed}}/model.pt",
    log:
        f"{OUT}/logs/derive_split_target/{{protocol}}/{{recut}}/unprotected/seed{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/derive_split_target/{{protocol}}/{{recut}}/unprotected/seed{{seed}}.tsv"
    wildcard_constraints:
        recut="|".join(RECUT) or "(?!)",
    conda:
        "../../envs/pipeline.yaml"
    params:
        settings=recut_params,
    script:
        "../scripts/derive_split_target.py"
