rule evaluate_target:
    input:
        model=f"{OUT}/targets/{TARGET}/model.pt",
        data=f"{OUT}/data/{{dataset}}.pt",
    output:
        evaluation=f"{OUT}/targets/{TARGET}/evaluation.json",
    params:
        settings=evaluation_params,
    log:
        f"{OUT}/logs/evaluate_target/{TARGET}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate_target/{TARGET}.tsv"
    threads: config["threads"]
    resources:
        gpu=1,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/evaluate_target.py"


rule estimate_mi:
    input:
        model=f"{OUT}/targets/{TARGET}/model.pt",
        data=f"{OUT}/data/{{dataset}}.pt",
    output:
        mi=f"{OUT}/targets/{TARGET}/mi.json",
    params:
        settings=mine_params,
    log:
        f"{OUT}/logs/estimate_mi/{TARGET}.log",
    benchmark:
        f"{OUT}/benchmarks/estimate_mi/{TARGET}.tsv"
    threads: config["threads"]
    resources:
        gpu=1,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/estimate_mi.py"
