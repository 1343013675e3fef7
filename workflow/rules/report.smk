# Aggregation: every table, figure and record below is written from run results by a package
# function (ciprivacy.reporting); `snakemake --report` collects them by category. Per protocol,
# each experiment's tables and figures read its own tidy file; the summary folder holds what
# spans experiments and protocols. Paths and file lists: ciprivacy.reporting.plan.
rule experiment_results:
    input:
        unpack(lambda wc: run_files(wc, wc.experiment)),
    output:
        csv=f"{PER_PROTOCOL}/experiments/{{experiment}}/results_long.csv",
    log:
        f"{OUT}/logs/experiment_results/{{protocol}}/{{experiment}}.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/results_long.py"


use rule experiment_results as results_long with:
    input:
        unpack(run_files),
    output:
        csv=shown(
            f"{SUMMARY}/tables/results_long.csv",
            "results_long",
            "4 Data and provenance",
        ),
    log:
        f"{SUMMARY}/logs/results_long.log",


rule summary_table:
    input:
        unpack(run_files),
    output:
        csv=shown(f"{SUMMARY}/tables/summary.csv", "summary", "4 Data and provenance"),
        md=f"{SUMMARY}/tables/summary.md",
    log:
        f"{SUMMARY}/logs/summary_table.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/summary_table.py"


rule table:
    input:
        tidy=lambda wc: f"{OUT}/{wc.protocol}/experiments/{TABLES[wc.name].experiment}/results_long.csv",
    output:
        html=shown(
            f"{PER_PROTOCOL}/tables/{{name}}.html", "table", "1 Tables", table="{name}"
        ),
        csv=f"{PER_PROTOCOL}/tables/{{name}}.csv",
        tex=f"{PER_PROTOCOL}/tables/{{name}}.tex",
        md=f"{PER_PROTOCOL}/tables/{{name}}.md",
    log:
        f"{OUT}/logs/table/{{protocol}}/{{name}}.log",
    wildcard_constraints:
        name=_alternatives(TABLES),
    conda:
        "../../envs/pipeline.yaml"
    params:
        spec=lambda wc: TABLES[wc.name],
    script:
        "../scripts/table.py"


rule summary_page:
    input:
        tidy=f"{SUMMARY}/tables/results_long.csv",
    output:
        html=shown(
            f"{SUMMARY}/tables/{{page}}.html",
            "summary_page",
            "0 Claims and comparison",
        ),
        csv=f"{SUMMARY}/tables/{{page}}.csv",
        md=f"{SUMMARY}/tables/{{page}}.md",
    log:
        f"{SUMMARY}/logs/{{page}}.log",
    wildcard_constraints:
        page=_alternatives(PLAN.SUMMARY_TABLES),
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/summary_page.py"


rule glance:
    input:
        claims=f"{SUMMARY}/tables/claims.csv",
        tables=[f"{OUT}/{p}/tables/{MAIN_TABLE}.csv" for p in MAIN_PROTOCOLS],
    output:
        html=shown(
            f"{SUMMARY}/tables/{PLAN.GLANCE}.html", "glance", "0 Claims and comparison"
        ),
    log:
        f"{SUMMARY}/logs/{PLAN.GLANCE}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        table=MAIN_TABLE,
        protocols=MAIN_PROTOCOLS,
    script:
        "../scripts/glance.py"


rule provenance:
    input:
        models=PLAN.target_files(EXPERIMENTS, SEEDS, OUT, "model.pt"),
        attacks=PLAN.attack_files(EXPERIMENTS, SEEDS, OUT, "metrics.json"),
    output:
        json=shown(f"{SUMMARY}/provenance.json", "provenance", "4 Data and provenance"),
    log:
        f"{SUMMARY}/logs/provenance.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        runs=lambda wc: PLAN.provenance_runs(EXPERIMENTS, SEEDS, config, OUT),
    script:
        "../scripts/provenance.py"


rule plot_reconstructions:
    input:
        samples=lambda wc: PLAN.target_attack_files(
            EXPERIMENTS, SEEDS, OUT, "samples.pt", dict(wc)
        ),
    output:
        figure=shown(
            f"{PER_PROTOCOL}/figures/reconstructions/{TARGET_NAME}.png",
            "reconstructions",
            "2 Figures",
        ),
    log:
        f"{OUT}/logs/plot_reconstructions/{{protocol}}/{TARGET}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        n=config["figures"]["n_samples"],
    script:
        "../scripts/plot_reconstructions.py"


rule figure4:
    input:
        samples=lambda wc: pair_files(wc, "samples.pt"),
        metrics=lambda wc: pair_files(wc, "metrics.json"),
    output:
        figure=shown(
            f"{PER_PROTOCOL}/figures/figure4_{{dataset}}-{{arch}}.png",
            "figure4",
            "2 Figures",
        ),
    log:
        f"{OUT}/logs/figure4/{{protocol}}/{{dataset}}-{{arch}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        n=min(4, config["figures"]["n_samples"]),
    script:
        "../scripts/figure4.py"


rule privacy_utility:
    input:
        tidy=lambda wc: f"{OUT}/{wc.protocol}/experiments/{FIGURE_PAIRS[f'{wc.dataset}-{wc.arch}']}/results_long.csv",
    output:
        figure=shown(
            f"{PER_PROTOCOL}/figures/privacy_utility_{{dataset}}-{{arch}}.png",
            "privacy_utility",
            "2 Figures",
        ),
    log:
        f"{OUT}/logs/privacy_utility/{{protocol}}/{{dataset}}-{{arch}}.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/privacy_utility.py"


rule figure2_depth:
    input:
        tidy=f"{PER_PROTOCOL}/experiments/{{experiment}}/results_long.csv",
    output:
        figure=shown(
            f"{PER_PROTOCOL}/figures/figure2_{{experiment}}.png",
            "figure2_depth",
            "2 Figures",
        ),
    log:
        f"{OUT}/logs/figure2_depth/{{protocol}}/{{experiment}}.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/figure2_depth.py"


rule criteria_plot:
    input:
        tidy=f"{SUMMARY}/tables/results_long.csv",
    output:
        figure=shown(f"{SUMMARY}/figures/criteria.png", "criteria", "2 Figures"),
        table=f"{SUMMARY}/tables/criteria_spearman.csv",
        violations=f"{SUMMARY}/tables/criteria_spearman_bound_violations.csv",
    log:
        f"{SUMMARY}/logs/criteria_plot.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/criteria_plot.py"


# One target per experiment: `snakemake --cores all <experiment>` builds it alone. An experiment
# skipped for missing data, or disabled, keeps its rule, whose input function says why it cannot run.
_taken = sorted(
    set(config["experiments"]) & ({r.name for r in workflow.rules} | {"all"})
)
if _taken:
    raise WorkflowError(
        f"experiments {_taken} have the names of rules of the workflow; rename the blocks"
    )
for _name in [*EXPERIMENTS, *SKIPPED_EXPERIMENTS, *DISABLED_EXPERIMENTS]:

    rule:
        name:
            _name
        input:
            (
                PLAN.experiment_outputs(EXPERIMENTS, _name, OUT)
                if _name in EXPERIMENTS
                else unavailable_experiment(_name)
            ),
