# The generative prior of the attacks that search a GAN's latent space (GLASS, GLASS++): one per
# dataset, trained on the attacker's auxiliary split and shared by every target and protocol.


rule train_prior:
    input:
        data=f"{OUT}/data/{{dataset}}.pt",
    output:
        prior=f"{OUT}/priors/{{dataset}}.pt",
    log:
        f"{OUT}/logs/train_prior/{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_prior/{{dataset}}.tsv"
    # Every GLASS attack on the dataset waits for it (and under job_grouping: target every
    # other attack of those targets too): started before the targets' trainings, not after.
    priority: 10
    conda:
        "../../envs/pipeline.yaml"
    threads: config["threads"]
    resources:
        gpu=GPU_JOB,
        runtime=retry_runtime(720),
    params:
        settings=lambda wc: S.canonical(config["priors"]),
        # Not an output: a killed job leaves it behind and the rerun resumes from it.
        checkpoint=f"{OUT}/checkpoints/priors/{{dataset}}.pt",
    script:
        "../scripts/train_prior.py"
