"""Cost of the full default config (config.yaml) projected from measured images per second.

Counts images pushed through each stage: target training (epochs x train split), the two
inverse networks (epochs x aux split each), rMLE (num_images x iterations), MINE (epochs x
train split), times the number of defenses and seeds. Evaluation passes (forward only) and
defense-specific extra cost (DP-SGD's per-sample gradients, SiftFunnel's dCor) are left out,
so this is a lower bound; the gray-box network is costed like the black-box one.
"""

from __future__ import annotations

from pathlib import Path

import yaml

CIFAR10_IMAGES = 60_000  # train + test sets of CIFAR-10, pooled (Table 1)


def project(config_path: Path, ours_ips: dict[str, float], rmle_iterations_measured: int) -> list[dict]:
    """Hours on this machine per stage and in total; ``ours_ips`` maps stage -> images/s."""
    cfg = yaml.safe_load(config_path.read_text())
    dataset = cfg["datasets"][cfg["run"]["datasets"][0]]
    n = dataset["max_images"] or CIFAR10_IMAGES
    train, aux = n * dataset["split"]["train"], n * dataset["split"]["aux"]
    jobs = len(cfg["run"]["defenses"]) * len(cfg["seeds"])
    wb = cfg["attacks"]["whitebox"]
    inverse_images = sum(cfg["attacks"][s]["epochs"] * aux for s in ("blackbox", "graybox") if s in cfg["run"]["scenarios"])
    work = {
        "target_training": cfg["target_training"]["epochs"] * train,
        "inverse_training": inverse_images,
        "rmle": (wb["num_images"] or n * dataset["split"]["test"]) * wb["iterations"] / rmle_iterations_measured,
        "mine": cfg["mine"]["epochs"] * (cfg["mine"]["max_train"] or train),
    }
    rows = [
        {"stage": stage, "images_per_job": round(images), "jobs": jobs, "hours": images * jobs / ours_ips[stage] / 3600}
        for stage, images in work.items()
    ]
    rows.append({"stage": "total", "images_per_job": None, "jobs": jobs, "hours": sum(r["hours"] for r in rows)})
    return rows
