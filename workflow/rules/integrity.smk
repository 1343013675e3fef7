# The manifest of a run: size and SHA-256 of every result file, for
#   python -m ciprivacy.integrity verify results/<preset>/<summary>/manifest.json
# which reports files missing or changed since (Snakemake notices neither; docs/integrity.md).
# It records this run's own files only (its outputs and every per-target result it made), so
# two presets sharing a results folder never record each other's.


rule manifest:
    input:
        # The run's final outputs and every per-target result: written after all of them.
        lambda wc: [*final_outputs(), *PLAN.run_results(EXPERIMENTS, SEEDS, OUT)],
    output:
        f"{SUMMARY}/manifest.json",
    log:
        f"{SUMMARY}/logs/manifest.log",
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/manifest.py"
