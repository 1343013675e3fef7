# Aggregation: every table, figure and record below is written from run results by a package
# function (ciprivacy.reporting); `snakemake --report` collects them by category.
from ciprivacy.reporting import plan as REPORT_PLAN

# Name -> (dataset, arch) of the paper-layout tables this run fills (Tables 2-4 per pair that
# runs, Table 5 per dataset); the lists of report files are in ciprivacy.reporting.plan.
DEFENSE_TABLES = REPORT_PLAN.defense_tables(config)
ARCH_TABLES = REPORT_PLAN.arch_tables(config)


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


rule defense_table:
    input:
        tidy=f"{OUT}/tables/results_long.csv",
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
        pair=lambda wc: DEFENSE_TABLES[wc.name],
    script:
        "../scripts/defense_table.py"


rule arch_table:
    input:
        tidy=f"{OUT}/tables/results_long.csv",
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
        pair=lambda wc: (ARCH_TABLES[wc.name], None),
    script:
        "../scripts/defense_table.py"


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
        runs=lambda wc: REPORT_PLAN.provenance_runs(config, OUT),
    script:
        "../scripts/provenance.py"


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
        scenarios=SCENARIO_NAMES,
        n=config["figures"]["n_samples"],
    script:
        "../scripts/plot_reconstructions.py"


rule figure4:
    input:
        samples=lambda wc: REPORT_PLAN.pair_files(
            config, OUT, wc.dataset, wc.arch, "samples.pt"
        ),
        metrics=lambda wc: REPORT_PLAN.pair_files(
            config, OUT, wc.dataset, wc.arch, "metrics.json"
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
        tidy=f"{OUT}/tables/results_long.csv",
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
        tidy=f"{OUT}/tables/results_long.csv",
    output:
        figure=report(
            f"{OUT}/figures/figure2_depth.png",
            caption="../report/figure2_depth.rst",
            category="2 Figures",
            subcategory="Figure 2: depth study",
        ),
    log:
        f"{OUT}/logs/figure2_depth.log",
    benchmark:
        f"{OUT}/benchmarks/figure2_depth.tsv"
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/figure2_depth.py"
