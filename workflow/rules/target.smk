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
    params:
        settings=train_params,
    script:
        "../scripts/train_target.py"
