rule prepare_data:
    output:
        data=f"{OUT}/data/{{dataset}}.pt",
    params:
        settings=lambda wc: S.dataset_settings(config, wc.dataset),
    log:
        f"{OUT}/logs/prepare_data/{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/prepare_data/{{dataset}}.tsv"
    threads: 2
    resources:
        mem_mb=16000,
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/prepare_data.py"
