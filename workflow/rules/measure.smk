# Test-split measurements of one target in one job: accuracy, delta(z) and the CEM measures
# (evaluation.json; per test image in per_image.csv), and the MINE estimate of I(x; z) (mi.json).
# One job instead of two saves a process start and a model/data load per target; a changed MINE
# or evaluation setting reruns both, and the evaluation part takes seconds. Under
# job_grouping: target the target's attacks join them (evaluate.smk).
if not GROUPED:

    rule measure_target:
        input:
            model=f"{TARGET_DIR}/model.pt",
            data=f"{OUT}/data/{{dataset}}.pt",
        output:
            evaluation=f"{TARGET_DIR}/evaluation.json",
            mi=f"{TARGET_DIR}/mi.json",
            # Per test image: correct or not, delta(z)'s count; the reports bootstrap intervals from them.
            per_image=f"{TARGET_DIR}/per_image.csv",
        log:
            f"{OUT}/logs/measure_target/{{protocol}}/{TARGET}.log",
        benchmark:
            f"{OUT}/benchmarks/measure_target/{{protocol}}/{TARGET}.tsv"
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


# Edge latency, FLOPs and parameters of every architecture x defense of a latency experiment,
# on freshly built models (no training).
rule measure_latency:
    input:
        data=lambda wc: [f"{OUT}/data/{d}.pt" for d in EXPERIMENTS[wc.name].datasets],
    output:
        html=shown(
            f"{PER_PROTOCOL}/tables/{{name}}.html",
            "latency",
            "1 Tables",
            table="{name}",
        ),
        csv=f"{PER_PROTOCOL}/tables/{{name}}.csv",
        md=f"{PER_PROTOCOL}/tables/{{name}}.md",
    log:
        f"{OUT}/logs/measure_latency/{{protocol}}/{{name}}.log",
    wildcard_constraints:
        name=_alternatives(LATENCY),
    conda:
        "../../envs/pipeline.yaml"
    # Every core of the machine, so no other local job loads the CPU while it times; the timed
    # inference itself runs on one thread, as an edge device runs it. Under SLURM the profile
    # asks for a node of its own (--exclusive).
    threads: lambda wc: whole_machine_threads()
    resources:
        gpu=GPU_JOB,
        runtime=retry_runtime(60),
    params:
        datasets=lambda wc: list(EXPERIMENTS[wc.name].datasets),
        specs=lambda wc: PLAN.latency_specs(EXPERIMENTS[wc.name], config, wc.protocol),
        settings=lambda wc: PLAN.latency_settings(EXPERIMENTS[wc.name], config),
    script:
        "../scripts/measure_latency.py"
