rule summary_table:
    input:
        evaluations=per_target(f"{OUT}/targets/{TARGET}/evaluation.json"),
        mi=per_target(f"{OUT}/targets/{TARGET}/mi.json"),
        attacks=attack_metrics(),
    output:
        csv=report(
            f"{OUT}/tables/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
        ),
        md=f"{OUT}/tables/summary.md",
    log:
        f"{OUT}/logs/summary_table.log",
    benchmark:
        f"{OUT}/benchmarks/summary_table.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/summary_table.py"


rule plot_reconstructions:
    input:
        samples=expand(
            f"{OUT}/attacks/{TARGET}/{{scenario}}/samples.pt",
            scenario=SCENARIO_NAMES,
            allow_missing=True,
        ),
    output:
        figure=report(
            f"{OUT}/figures/reconstructions/{TARGET_NAME}.png",
            caption="../report/reconstructions.rst",
            category="Figures",
        ),
    log:
        f"{OUT}/logs/plot_reconstructions/{TARGET}.log",
    benchmark:
        f"{OUT}/benchmarks/plot_reconstructions/{TARGET}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    params:
        scenarios=SCENARIO_NAMES,
        n=config["figures"]["n_samples"],
    script:
        "../scripts/plot_reconstructions.py"
