# Aggregation: every table, figure and record below is written from run results by a package
# function (ciprivacy.reporting); `snakemake --report` collects them by category.
from ciprivacy.reporting import plan as REPORT_PLAN

# Name -> (..., experiment) of the paper-layout tables the enabled experiments fill; each reads
# its experiment's own tidy file. The lists of report files are in ciprivacy.reporting.plan.
DEFENSE_TABLES = REPORT_PLAN.defense_tables(EXPERIMENTS)
ARCH_TABLES = REPORT_PLAN.arch_tables(EXPERIMENTS)
FIGURE_PAIRS = REPORT_PLAN.figure_pairs(EXPERIMENTS)
CEM_TABLES = REPORT_PLAN.cem_tables(EXPERIMENTS)
ABLATION_TABLES = REPORT_PLAN.ablation_tables(EXPERIMENTS)
LATENCY = [name for name, exp in EXPERIMENTS.items() if exp.kind == "latency"]


rule summary_table:
    input:
        evaluations=per_target(f"{OUT}/targets/{TARGET}/evaluation.json"),
        mi=per_target(f"{OUT}/targets/{TARGET}/mi.json"),
        attacks=attack_metrics(),
    output:
        csv=report(
            f"{OUT}/tables/summary.csv",
            caption="../report/summary.rst",
            category="4 Data and provenance",
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


rule results_long:
    input:
        evaluations=per_target(f"{OUT}/targets/{TARGET}/evaluation.json"),
        mi=per_target(f"{OUT}/targets/{TARGET}/mi.json"),
        attacks=attack_metrics(),
        models=per_target(f"{OUT}/targets/{TARGET}/model.pt"),
    output:
        csv=report(
            f"{OUT}/tables/results_long.csv",
            caption="../report/results_long.rst",
            category="4 Data and provenance",
        ),
    log:
        f"{OUT}/logs/results_long.log",
    benchmark:
        f"{OUT}/benchmarks/results_long.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/results_long.py"


use rule results_long as experiment_results with:
    input:
        evaluations=lambda wc: per_target(
            f"{OUT}/targets/{TARGET}/evaluation.json", wc.experiment
        ),
        mi=lambda wc: per_target(f"{OUT}/targets/{TARGET}/mi.json", wc.experiment),
        attacks=lambda wc: attack_metrics(wc.experiment),
        models=lambda wc: per_target(f"{OUT}/targets/{TARGET}/model.pt", wc.experiment),
    output:
        csv=f"{OUT}/experiments/{{experiment}}/results_long.csv",
    log:
        f"{OUT}/logs/experiment_results/{{experiment}}.log",
    benchmark:
        f"{OUT}/benchmarks/experiment_results/{{experiment}}.tsv"


rule defense_table:
    input:
        tidy=lambda wc: experiment_tidy(DEFENSE_TABLES[wc.name][2]),
    output:
        html=report(
            f"{OUT}/tables/{{name}}.html",
            caption="../report/defense_table.rst",
            category="1 Tables",
            subcategory="{name}",
            labels={"table": "{name}", "format": "HTML"},
        ),
        csv=report(
            f"{OUT}/tables/{{name}}.csv",
            caption="../report/table_file.rst",
            category="1 Tables",
            subcategory="{name}",
            labels={"table": "{name}", "format": "CSV"},
        ),
        tex=report(
            f"{OUT}/tables/{{name}}.tex",
            caption="../report/table_file.rst",
            category="1 Tables",
            subcategory="{name}",
            labels={"table": "{name}", "format": "LaTeX"},
        ),
        md=f"{OUT}/tables/{{name}}.md",
    log:
        f"{OUT}/logs/tables/{{name}}.log",
    benchmark:
        f"{OUT}/benchmarks/tables/{{name}}.tsv"
    wildcard_constraints:
        name="|".join(DEFENSE_TABLES) or "^$",
    conda:
        "../../envs/pipeline.yaml"
    params:
        pair=lambda wc: DEFENSE_TABLES[wc.name][:2],
    script:
        "../scripts/defense_table.py"


rule arch_table:
    input:
        tidy=lambda wc: experiment_tidy(ARCH_TABLES[wc.name][1]),
    output:
        html=report(
            f"{OUT}/tables/{{name}}.html",
            caption="../report/arch_table.rst",
            category="1 Tables",
            subcategory="{name}",
            labels={"table": "{name}", "format": "HTML"},
        ),
        csv=report(
            f"{OUT}/tables/{{name}}.csv",
            caption="../report/table_file.rst",
            category="1 Tables",
            subcategory="{name}",
            labels={"table": "{name}", "format": "CSV"},
        ),
        tex=report(
            f"{OUT}/tables/{{name}}.tex",
            caption="../report/table_file.rst",
            category="1 Tables",
            subcategory="{name}",
            labels={"table": "{name}", "format": "LaTeX"},
        ),
        md=f"{OUT}/tables/{{name}}.md",
    log:
        f"{OUT}/logs/tables/{{name}}.log",
    benchmark:
        f"{OUT}/benchmarks/tables/{{name}}.tsv"
    wildcard_constraints:
        name="|".join(ARCH_TABLES) or "^$",
    conda:
        "../../envs/pipeline.yaml"
    params:
        pair=lambda wc: (ARCH_TABLES[wc.name][0], None),
    script:
        "../scripts/defense_table.py"


rule cem_table:
    input:
        tidy=lambda wc: experiment_tidy(CEM_TABLES[wc.name][2]),
    output:
        html=report(
            f"{OUT}/tables/{{name}}.html",
            caption="../report/cem_table.rst",
            category="1 Tables",
            subcategory="{name}",
            labels={"table": "{name}", "format": "HTML"},
        ),
        csv=f"{OUT}/tables/{{name}}.csv",
        tex=f"{OUT}/tables/{{name}}.tex",
        md=f"{OUT}/tables/{{name}}.md",
    log:
        f"{OUT}/logs/tables/{{name}}.log",
    benchmark:
        f"{OUT}/benchmarks/tables/{{name}}.tsv"
    wildcard_constraints:
        name="|".join(CEM_TABLES) or "^$",
    conda:
        "../../envs/pipeline.yaml"
    params:
        pair=lambda wc: CEM_TABLES[wc.name][:2],
    script:
        "../scripts/cem_table.py"


rule ablation_table:
    input:
        tidy=lambda wc: experiment_tidy(ABLATION_TABLES[wc.name][2]),
    output:
        html=report(
            f"{OUT}/tables/{{name}}.html",
            caption="../report/ablation_table.rst",
            category="1 Tables",
            subcategory="{name}",
            labels={"table": "{name}", "format": "HTML"},
        ),
        csv=f"{OUT}/tables/{{name}}.csv",
        tex=f"{OUT}/tables/{{name}}.tex",
        md=f"{OUT}/tables/{{name}}.md",
    log:
        f"{OUT}/logs/tables/{{name}}.log",
    benchmark:
        f"{OUT}/benchmarks/tables/{{name}}.tsv"
    wildcard_constraints:
        name="|".join(ABLATION_TABLES) or "^$",
    conda:
        "../../envs/pipeline.yaml"
    params:
        pair=lambda wc: ABLATION_TABLES[wc.name][:2],
    script:
        "../scripts/ablation_table.py"


rule measure_latency:
    input:
        data=lambda wc: [f"{OUT}/data/{d}.pt" for d in EXPERIMENTS[wc.name].datasets],
    output:
        html=report(
            f"{OUT}/tables/{{name}}.html",
            caption="../report/latency.rst",
            category="1 Tables",
            subcategory="{name}",
        ),
        csv=f"{OUT}/tables/{{name}}.csv",
        md=f"{OUT}/tables/{{name}}.md",
    log:
        f"{OUT}/logs/measure_latency/{{name}}.log",
    benchmark:
        f"{OUT}/benchmarks/measure_latency/{{name}}.tsv"
    wildcard_constraints:
        name="|".join(LATENCY) or "^$",
    conda:
        "../../envs/pipeline.yaml"
    # Every core of the machine, so no other local job runs beside it and loads the CPU while it
    # times; the timed inference itself runs on one thread (cpu_threads: 1, as an edge device
    # runs it). Under SLURM the profile asks for a node of its own (--exclusive).
    threads: lambda wc: whole_machine_threads()  # evaluated once the executor is known
    resources:
        gpu=GPU_JOB,
        runtime=retry_runtime(60),
    params:
        datasets=lambda wc: list(EXPERIMENTS[wc.name].datasets),
        specs=lambda wc: REPORT_PLAN.latency_specs(EXPERIMENTS[wc.name], config),
        settings=lambda wc: REPORT_PLAN.latency_settings(EXPERIMENTS[wc.name], config),
    script:
        "../scripts/measure_latency.py"


rule paper_comparison:
    input:
        tidy=f"{OUT}/tables/results_long.csv",
    output:
        html=report(
            f"{OUT}/tables/paper_comparison.html",
            caption="../report/paper_comparison.rst",
            category="3 Paper comparison",
        ),
        csv=f"{OUT}/tables/paper_comparison.csv",
        md=f"{OUT}/tables/paper_comparison.md",
    log:
        f"{OUT}/logs/paper_comparison.log",
    benchmark:
        f"{OUT}/benchmarks/paper_comparison.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/paper_comparison.py"


rule claims_check:
    input:
        tidy=f"{OUT}/tables/results_long.csv",
    output:
        html=report(
            f"{OUT}/tables/claims.html",
            caption="../report/claims.rst",
            category="0 Claims",
        ),
        csv=f"{OUT}/tables/claims.csv",
        md=f"{OUT}/tables/claims.md",
    log:
        f"{OUT}/logs/claims_check.log",
    benchmark:
        f"{OUT}/benchmarks/claims_check.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/claims_check.py"


rule provenance:
    input:
        models=per_target(f"{OUT}/targets/{TARGET}/model.pt"),
        attacks=attack_metrics(),
    output:
        json=report(
            f"{OUT}/provenance.json",
            caption="../report/provenance.rst",
            category="4 Data and provenance",
        ),
    log:
        f"{OUT}/logs/provenance.log",
    benchmark:
        f"{OUT}/benchmarks/provenance.tsv"
    conda:
        "../../envs/pipeline.yaml"
    params:
        runs=lambda wc: REPORT_PLAN.provenance_runs(EXPERIMENTS, SEEDS, config, OUT),
    script:
        "../scripts/provenance.py"


rule plot_reconstructions:
    input:
        samples=lambda wc: [
            f
            for f in REPORT_PLAN.attack_files(EXPERIMENTS, SEEDS, OUT, "samples.pt")
            if f"/{wc.dataset}/{wc.arch}/{wc.defense}/seed{wc.seed}/" in f
        ],
    output:
        figure=report(
            f"{OUT}/figures/reconstructions/{TARGET_NAME}.png",
            caption="../report/reconstructions.rst",
            category="2 Figures",
            subcategory="Reconstructions per target",
        ),
    log:
        f"{OUT}/logs/plot_reconstructions/{TARGET}.log",
    benchmark:
        f"{OUT}/benchmarks/plot_reconstructions/{TARGET}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    params:
        n=config["figures"]["n_samples"],
    script:
        "../scripts/plot_reconstructions.py"


rule figure4:
    input:
        samples=lambda wc: REPORT_PLAN.pair_files(
            EXPERIMENTS,
            SEEDS,
            OUT,
            FIGURE_PAIRS[f"{wc.dataset}-{wc.arch}"],
            wc.dataset,
            wc.arch,
            "samples.pt",
        ),
        metrics=lambda wc: REPORT_PLAN.pair_files(
            EXPERIMENTS,
            SEEDS,
            OUT,
            FIGURE_PAIRS[f"{wc.dataset}-{wc.arch}"],
            wc.dataset,
            wc.arch,
            "metrics.json",
        ),
    output:
        figure=report(
            f"{OUT}/figures/figure4_{{dataset}}-{{arch}}.png",
            caption="../report/figure4.rst",
            category="2 Figures",
            subcategory="Figure 4: reconstructions",
            labels={"dataset": "{dataset}", "arch": "{arch}"},
        ),
    log:
        f"{OUT}/logs/figure4/{{dataset}}-{{arch}}.log",
    benchmark:
        f"{OUT}/benchmarks/figure4/{{dataset}}-{{arch}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    params:
        n=min(4, config["figures"]["n_samples"]),
    script:
        "../scripts/figure4.py"


rule privacy_utility:
    input:
        tidy=lambda wc: experiment_tidy(FIGURE_PAIRS[f"{wc.dataset}-{wc.arch}"]),
    output:
        figure=report(
            f"{OUT}/figures/privacy_utility_{{dataset}}-{{arch}}.png",
            caption="../report/privacy_utility.rst",
            category="2 Figures",
            subcategory="Privacy vs utility",
            labels={"dataset": "{dataset}", "arch": "{arch}"},
        ),
    log:
        f"{OUT}/logs/privacy_utility/{{dataset}}-{{arch}}.log",
    benchmark:
        f"{OUT}/benchmarks/privacy_utility/{{dataset}}-{{arch}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/privacy_utility.py"


rule criteria_plot:
    input:
        tidy=f"{OUT}/tables/results_long.csv",
    output:
        figure=report(
            f"{OUT}/figures/criteria.png",
            caption="../report/criteria.rst",
            category="2 Figures",
            subcategory="Privacy criteria",
        ),
        table=f"{OUT}/tables/criteria_spearman.csv",
        violations=f"{OUT}/tables/criteria_spearman_bound_violations.csv",
    log:
        f"{OUT}/logs/criteria_plot.log",
    benchmark:
        f"{OUT}/benchmarks/criteria_plot.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/criteria_plot.py"


rule figure2_depth:
    input:
        tidy=lambda wc: experiment_tidy(wc.experiment),
    output:
        figure=report(
            f"{OUT}/figures/figure2_{{experiment}}.png",
            caption="../report/figure2_depth.rst",
            category="2 Figures",
            subcategory="Figure 2: depth study",
        ),
    log:
        f"{OUT}/logs/figure2_depth/{{experiment}}.log",
    benchmark:
        f"{OUT}/benchmarks/figure2_depth/{{experiment}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/figure2_depth.py"


# One target per experiment: `snakemake --cores all <experiment>` builds it alone. An experiment
# skipped for missing data keeps its rule, whose input function fails saying what is missing.
_taken = sorted(
    set(config["experiments"]) & ({r.name for r in workflow.rules} | {"all"})
)
if _taken:
    raise WorkflowError(
        f"experiments {_taken} have the names of rules of the workflow; rename the blocks "
        f"(rules: {sorted(r.name for r in workflow.rules)})"
    )
for _name in [*EXPERIMENTS, *SKIPPED_EXPERIMENTS, *DISABLED_EXPERIMENTS]:

    rule:
        name:
            _name
        input:
            (
                REPORT_PLAN.experiment_outputs(EXPERIMENTS, _name, OUT)
                if _name in EXPERIMENTS
                else unavailable_experiment(_name)
            ),
