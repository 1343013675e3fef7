rule evaluate_target:
    input:
        model=f"{OUT}/targets/{TARGET}/model.pt",
        data=f"{OUT}/data/{{dataset}}.pt",
    output:
        evaluation=f"{OUT}/targets/{TARGET}/evaluation.json",
    log:
        f"{OUT}/logs/evaluate_target/{TARGET}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate_target/{TARGET}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
        runtime=retry_runtime(30),
    params:
        settings=evaluation_params,
    script:
        "../scripts/evaluate_target.py"


rule estimate_mi:
    input:
        model=f"{OUT}/targets/{TARGET}/model.pt",
        data=f"{OUT}/data/{{dataset}}.pt",
    output:
        mi=f"{OUT}/targets/{TARGET}/mi.json",
    log:
        f"{OUT}/logs/estimate_mi/{TARGET}.log",
    benchmark:
        f"{OUT}/benchmarks/estimate_mi/{TARGET}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
        runtime=retry_runtime(60),
    params:
        settings=mine_params,
    script:
        "../scripts/estimate_mi.py"
