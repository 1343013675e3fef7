rule prepare_data:
    output:
        data=f"{OUT}/data/{{dataset}}.pt",
    log:
        f"{OUT}/logs/prepare_data/{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/prepare_data/{{dataset}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: 2
    resources:
        mem_mb=16000,
    params:
        settings=lambda wc: S.dataset_settings(config, wc.dataset),
    script:
        "../scripts/prepare_data.py"
