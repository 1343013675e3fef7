"""Cost of the full default config (config.yaml) projected from measured images per second.

Counts images pushed through each stage for every target of the enabled experiments: target
training (epochs x train split; not for post-hoc defenses and split-point variants, which reuse a
trained model), the inverse networks (epochs x aux split, per scenario
that trains one), rMLE (num_images x iterations), MINE (epochs x train split). The rates are
measured on the CNN at the config's resolution; targets of other architectures or resolutions
are costed by the ratio of their forward FLOPs per image to that CNN's (counted with
FlopCounterMode), which assumes the same FLOP throughput. Evaluation passes (forward only)
and defense-specific extra cost (DP-SGD's per-sample gradients, SiftFunnel's dCor) are left
out, so this is a lower bound; the gray-box network is costed like the black-box one.
Experiments whose data path is unset (FaceScrub, ChestX-ray) are projected at the sizes of
Table 1 (FaceScrub ~43k images, CelebA ~200k, ChestX-ray 9,208).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from ciprivacy import config as S
from ciprivacy.experiments import all_targets, experiments, scenarios_of
from ciprivacy.target import build_target

# Images per dataset when the config does not cap them (the paper's Table 1 sources).
FULL_SIZES = {"torchvision_cifar10": 60_000, "facescrub_folder": 43_000, "chestxray_folder": 9_208}
AUX_SIZES = {"torchvision_celeba": 200_000, "celeba_folder": 200_000}
NUM_CLASSES = {"torchvision_cifar10": 10, "facescrub_folder": 530, "chestxray_folder": 4}


@functools.cache
def _flops(arch: str, defense: str, shape: tuple[int, int, int], classes: int, cfg_text: str) -> float:
    """Forward FLOPs of one image through the whole model (training cost scales with it)."""
    cfg = yaml.safe_load(cfg_text)
    settings = S.target_settings(cfg, "any", arch, defense, 0)
    model, _ = build_target(settings, classes, shape)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    return float(counter.get_total_flops())


def typed_config(config_path: Path) -> dict:
    """The config file as the workflow reads it: typed and checked."""
    return S.check_dict(yaml.safe_load(config_path.read_text()), str(config_path))


def _sizes(block: dict) -> tuple[float, float, float]:
    """(train, test, aux) images of one dataset block."""
    n = block["max_images"] or FULL_SIZES.get(block["source"], 60_000)
    split = block["split"]
    aux = (split.get("aux") or 0) * n
    if block.get("aux_source"):
        aux = block["aux_source"].get("max_images") or AUX_SIZES.get(block["aux_source"]["source"], n)
    return n * split["train"], n * split["test"], aux


def project(config_path: Path, ours_ips: dict[str, float], rmle_iterations_measured: int) -> list[dict]:
    """Hours on this machine per stage and in total; ``ours_ips`` maps stage -> images/s."""
    text = config_path.read_text()
    cfg = typed_config(config_path)
    found, _ = experiments(cfg)
    targets = all_targets(found, cfg["seeds"])
    recut = S.recut_pairs(cfg, targets)
    # Post-hoc defenses reuse the unprotected model and split-point variants their base's:
    # attacked and measured, not trained.
    trained = [
        not S.reuses_unprotected_model(cfg, t["defense"])
        and not (t["defense"] == "unprotected" and (t["dataset"], t["arch"]) in recut)
        for t in targets
    ]
    scenarios = scenarios_of(found, cfg["seeds"])
    base_block = cfg["datasets"]["cifar10"]
    base = _flops(
        "cnn", "unprotected", (base_block["channels"], base_block["resolution"], base_block["resolution"]), 10, text
    )
    wb = cfg["attacks"]["whitebox"]
    work = {"target_training": 0.0, "inverse_training": 0.0, "rmle": 0.0, "mine": 0.0}
    jobs = dict.fromkeys(work, 0)  # the jobs that run each stage
    for t, trains in zip(targets, trained):
        block = cfg["datasets"][t["dataset"]]
        shape = (block["channels"], block["resolution"], block["resolution"])
        scale = _flops(t["arch"], t["defense"], shape, NUM_CLASSES.get(block["source"], 10), text) / base
        train, test, aux = _sizes(block)
        attacked = [s for s in scenarios[tuple(t.values())] if s in ("blackbox", "graybox")]
        work["target_training"] += trains * scale * cfg["target_training"]["epochs"] * train
        work["inverse_training"] += scale * sum(cfg["attacks"][s]["epochs"] * aux for s in attacked)
        whitebox = "whitebox" in scenarios[tuple(t.values())]
        if whitebox:
            work["rmle"] += scale * (wb["num_images"] or test) * wb["iterations"] / rmle_iterations_measured
        mine = cfg["mine"]
        work["mine"] += scale * mine["restarts"] * mine["epochs"] * (mine["max_train"] or train)
        for stage, n in (
            ("target_training", trains),
            ("inverse_training", len(attacked)),
            ("rmle", whitebox),
            ("mine", 1),
        ):
            jobs[stage] += int(n)
    # A stage left out of the measurement (--stages) has no rate: its hours, and the total, stay unknown.
    rows = [
        {
            "stage": stage,
            "images_per_job": round(images / max(1, jobs[stage])),
            "jobs": jobs[stage],
            "hours": images / ours_ips[stage] / 3600 if stage in ours_ips else float("nan"),
        }
        for stage, images in work.items()
    ]
    rows.append({"stage": "total", "images_per_job": None, "jobs": None, "hours": sum(r["hours"] for r in rows)})
    return rows
