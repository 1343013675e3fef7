rule train_target:
    input:
        data=f"{OUT}/data/{{dataset}}.pt",
    output:
        model=f"{OUT}/targets/{TARGET}/model.pt",
    log:
        f"{OUT}/logs/train_target/{TARGET}.log",
    benchmark:
        f"{OUT}/benchmarks/train_target/{TARGET}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
        runtime=retry_runtime(240),
    params:
        settings=train_params,
        # Not an output: a killed job leaves it behind and the rerun resumes from it.
        checkpoint=f"{OUT}/checkpoints/{TARGET}/target.pt",
    script:
        "../scripts/train_target.py"
