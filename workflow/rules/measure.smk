# Test-split measurements of one target in one job: accuracy, delta(z) and the CEM measures
# (evaluation.json), and the MINE estimate of I(x; z) (mi.json). One job instead of two saves a
# process start and a model/data load per target; a changed MINE or evaluation setting reruns
# both, and the evaluation part takes seconds.


rule measure_target:
    input:
        model=f"{OUT}/targets/{TARGET}/model.pt",
        data=f"{OUT}/data/{{dataset}}.pt",
    output:
        evaluation=f"{OUT}/targets/{TARGET}/evaluation.json",
        mi=f"{OUT}/targets/{TARGET}/mi.json",
    log:
        f"{OUT}/logs/measure_target/{TARGET}.log",
    benchmark:
        f"{OUT}/benchmarks/measure_target/{TARGET}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: config["threads"]
    resources:
        gpu=GPU_JOB,
        runtime=retry_runtime(90),
    params:
        evaluation=evaluation_params,
        mine=mine_params,
    script:
        "../scripts/measure_target.py"
