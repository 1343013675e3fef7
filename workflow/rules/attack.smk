# One rule per threat scenario; black-box and gray-box share the inverse-network attack.


rule attack_whitebox:
    input:
        model=f"{OUT}/targets/{TARGET}/model.pt",
        data=f"{OUT}/data/{{dataset}}.pt",
    output:
        metrics=f"{OUT}/attacks/{TARGET}/whitebox/metrics.json",
        samples=f"{OUT}/attacks/{TARGET}/whitebox/samples.pt",
    log:
        f"{OUT}/logs/attack_whitebox/{TARGET}.log",
    benchmark:
        f"{OUT}/benchmarks/attack_whitebox/{TARGET}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: config["threads"]
    resources:
        gpu=GPU_JOB,
        runtime=retry_runtime(60),
    params:
        scenario="whitebox",
        # Not an output: a killed job leaves it behind and the rerun resumes from it.
        checkpoint=f"{OUT}/checkpoints/{TARGET}/whitebox.pt",
        settings=attack_params("whitebox"),
    script:
        "../scripts/attack.py"


rule attack_blackbox:
    input:
        model=f"{OUT}/targets/{TARGET}/model.pt",
        data=f"{OUT}/data/{{dataset}}.pt",
    output:
        metrics=f"{OUT}/attacks/{TARGET}/blackbox/metrics.json",
        samples=f"{OUT}/attacks/{TARGET}/blackbox/samples.pt",
        attacker=f"{OUT}/attacks/{TARGET}/blackbox/attacker.pt",
    log:
        f"{OUT}/logs/attack_blackbox/{TARGET}.log",
    benchmark:
        f"{OUT}/benchmarks/attack_blackbox/{TARGET}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: config["threads"]
    resources:
        gpu=GPU_JOB,
        runtime=retry_runtime(120),
    params:
        scenario="blackbox",
        # Not an output: a killed job leaves it behind and the rerun resumes from it.
        checkpoint=f"{OUT}/checkpoints/{TARGET}/blackbox.pt",
        settings=attack_params("blackbox"),
    script:
        "../scripts/attack.py"


use rule attack_blackbox as attack_graybox with:
    output:
        metrics=f"{OUT}/attacks/{TARGET}/graybox/metrics.json",
        samples=f"{OUT}/attacks/{TARGET}/graybox/samples.pt",
        attacker=f"{OUT}/attacks/{TARGET}/graybox/attacker.pt",
    log:
        f"{OUT}/logs/attack_graybox/{TARGET}.log",
    benchmark:
        f"{OUT}/benchmarks/attack_graybox/{TARGET}.tsv"
    params:
        scenario="graybox",
        # Not an output: a killed job leaves it behind and the rerun resumes from it.
        checkpoint=f"{OUT}/checkpoints/{TARGET}/graybox.pt",
        settings=attack_params("graybox"),


# Table 6's last row: the black-box inverse network on the features after SiftFunnel's cloud
# compensation module (what the cloud computes from z), same settings as the black-box attack.
use rule attack_blackbox as attack_compensation with:
    output:
        metrics=f"{OUT}/attacks/{TARGET}/compensation/metrics.json",
        samples=f"{OUT}/attacks/{TARGET}/compensation/samples.pt",
        attacker=f"{OUT}/attacks/{TARGET}/compensation/attacker.pt",
    log:
        f"{OUT}/logs/attack_compensation/{TARGET}.log",
    benchmark:
        f"{OUT}/benchmarks/attack_compensation/{TARGET}.tsv"
    params:
        scenario="compensation",
        # Not an output: a killed job leaves it behind and the rerun resumes from it.
        checkpoint=f"{OUT}/checkpoints/{TARGET}/compensation.pt",
        settings=attack_params("blackbox"),
