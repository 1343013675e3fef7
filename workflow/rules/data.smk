rule prepare_data:
    input:
        # Files whose content decides the data (the CelebA exclude list): editing one reruns this.
        files=lambda wc: S.dataset_input_files(config, wc.dataset),
    output:
        data=f"{OUT}/data/{{dataset}}.pt",
        # Its sha256, written by prepare_dataset; every job reading the data checks it (load_prepared).
        sha256=f"{OUT}/data/{{dataset}}.pt.sha256",
    log:
        f"{OUT}/logs/prepare_data/{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/prepare_data/{{dataset}}.tsv"
    # Every job of the dataset waits for it: run before any other ready job.
    priority: 20
    conda:
        "../../envs/pipeline.yaml"
    # As many as a training job: with more than the other jobs it waited, on a busy machine,
    # until all of them had finished (the demo-all's faces started 9 minutes in). Image files
    # are decoded in threads (ciprivacy.data.sources.read_images).
    threads: config["threads"]
    resources:
        mem_mb=16000,
    params:
        settings=lambda wc: S.dataset_settings(config, wc.dataset),
    script:
        "../scripts/prepare_data.py"
