# The manifest of a run: size and SHA-256 of every result file, for
#   python -m ciprivacy.integrity verify results/<preset>/manifest.json
# which reports files missing or changed since (Snakemake notices neither; docs/integrity.md).
# Wiring (Snakefile): include this file after common.smk and add f"{OUT}/manifest.json" to
# rule all's input (not to final_outputs(), which is the manifest's own input).


rule manifest:
    input:
        # The run's final outputs, so the manifest is written after every job that makes them.
        lambda wc: final_outputs(),
    output:
        f"{OUT}/manifest.json",
    log:
        f"{OUT}/logs/manifest.log",
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    params:
        results=OUT,
    script:
        "../scripts/manifest.py"
