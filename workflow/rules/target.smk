rule train_target:
    input:
        data=f"{OUT}/data/{{dataset}}.pt",
    output:
        model=f"{OUT}/targets/{TARGET}/model.pt",
    params:
        settings=train_params,
    log:
        f"{OUT}/logs/train_target/{TARGET}.log",
    benchmark:
        f"{OUT}/benchmarks/train_target/{TARGET}.tsv"
    threads: config["threads"]
    resources:
        gpu=1,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/train_target.py"
