"""Wall time of one paper-scale target training and one inverse-network training, run the way
the workflow runs them (``train_target`` and ``run_attack`` with the settings its rules pass).

    python benchmarks/paper_scale.py --device cuda                  # config.yaml's epochs in full
    python benchmarks/paper_scale.py --epochs 3 --attack-epochs 3   # 3 epochs each, projected to the config's
    python benchmarks/paper_scale.py --quick                        # tiny sizes: checks that it runs

Target: the CIFAR-10 CNN, unprotected (config.yaml's ``cifar10`` block and ``cnn`` entry). Attack:
the black-box inverse network against it. The images are synthetic (smooth random, as in
throughput.py) but as many and as large as the ``cifar10`` block's (60,000 pooled at 64x64, split as
configured): speed does not depend on the pixels, and it runs where CIFAR-10 cannot be downloaded.
Seconds include everything a job does after Python starts (loading the data, building the model,
evaluation every ``eval_every`` epochs, checkpoints, writing outputs). With fewer epochs than the
config's, the projection scales the measured seconds per epoch, fixed start-up included, to the
config's epochs: an upper estimate. Writes ``paper_scale.csv`` and ``paper_scale.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
from images import smooth_images
from machine import timed
from projection import typed_config

from ciprivacy import config as S
from ciprivacy.attacks import run_attack
from ciprivacy.data.prepared import split_fractions, stratified_split
from ciprivacy.io import save_torch
from ciprivacy.runtime import pick_device
from ciprivacy.target import train_target

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
CIFAR10_IMAGES = 60_000  # train + test pooled, as the cifar10 block splits them (Table 1)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--epochs", type=int, default=None, help="target epochs to run (default: config.yaml's)")
    p.add_argument(
        "--attack-epochs", type=int, default=None, help="inverse-network epochs to run (default: config.yaml's)"
    )
    p.add_argument(
        "--images", type=int, default=None, help="images before the split (default: 60,000 or the block's max_images)"
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    p.add_argument("--out", type=Path, default=OUT)
    return p.parse_args()


def write_dataset(cfg: dict, n: int, path: Path) -> dict[str, int]:
    """A prepared file in prepare_dataset's format, split as the cifar10 block says."""
    block = S.dataset_settings(cfg, "cifar10")
    images, labels = smooth_images(n, block["resolution"], classes=10)
    splits = stratified_split(labels, split_fractions("cifar10", block), seed=block["split_seed"])
    sizes = {k: int(v.numel()) for k, v in splits.items()}
    meta = {
        "dataset": "cifar10",
        "source": "synthetic (benchmarks/paper_scale.py)",
        "resolution": block["resolution"],
        "channels": 3,
        "split_seed": block["split_seed"],
        "source_info": {},
        "sizes": sizes,
    }
    save_torch(
        {
            "images": images,
            "labels": labels,
            "splits": splits,
            "classes": [f"class{i}" for i in range(10)],
            "meta": meta,
        },
        path,
    )
    return sizes


def main() -> None:
    args = parse_args()
    cfg = typed_config(ROOT / "config.yaml")
    if args.quick:
        cfg["datasets"]["cifar10"]["resolution"] = 32
        cfg["archs"]["cnn"]["model"]["width"] = 8
        args.images, args.epochs, args.attack_epochs = args.images or 300, args.epochs or 1, args.attack_epochs or 1
    device = pick_device(args.device)
    cfg["device"] = str(device)
    n = args.images or cfg["datasets"]["cifar10"]["max_images"] or CIFAR10_IMAGES
    # As the job scripts pass them: params plus the run-time settings (device, channels_last, query cache).
    target = S.with_runtime(S.target_settings(cfg, "cifar10", "cnn", "unprotected", 0), cfg, "target")
    attack = S.with_runtime(S.attack_settings(cfg, "blackbox", 0), cfg, "attack", "blackbox")
    full_epochs, full_attack_epochs = target["train"]["epochs"], attack["epochs"]
    target["train"]["epochs"] = args.epochs or full_epochs
    attack["epochs"] = args.attack_epochs or full_attack_epochs
    print(f"{device}, {torch.get_num_threads()} threads, {n} images", flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []

    def record(stage: str, images_per_epoch: int, epochs_run: int, seconds: float, config_epochs: int) -> None:
        """Add a row and rewrite both files at once, so a run cut short keeps what it measured."""
        rows.append(
            {
                "device": name,
                "stage": stage,
                "images_per_epoch": images_per_epoch,
                "epochs_run": epochs_run,
                "seconds": seconds,
                "config_epochs": config_epochs,
            }
        )
        df = pd.DataFrame(rows)
        df["seconds_per_epoch"] = df["seconds"] / df["epochs_run"]
        df["projected_hours_at_config_epochs"] = df["seconds_per_epoch"] * df["config_epochs"] / 3600
        df["paper_scale"] = n == CIFAR10_IMAGES and not args.quick
        df.to_csv(args.out / "paper_scale.csv", index=False)
        table = df.to_markdown(index=False, floatfmt=".4g")
        md = f"# One paper-scale training and inverse network on {name}\n\n{table}\n"
        (args.out / "paper_scale.md").write_text(md)
        print(md, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sizes = write_dataset(cfg, n, tmp / "cifar10.pt")
        print(f"splits {sizes}; training {target['train']['epochs']} of {full_epochs} epochs", flush=True)
        seconds = timed(
            lambda: train_target(
                str(tmp / "cifar10.pt"), str(tmp / "model.pt"), target, checkpoint=str(tmp / "target-ckpt.pt")
            ),
            device,
            repeats=1,
        )
        record("target_training (cnn, unprotected)", sizes["train"], target["train"]["epochs"], seconds, full_epochs)
        print(f"black-box inverse network: {attack['epochs']} of {full_attack_epochs} epochs", flush=True)
        seconds = timed(
            lambda: run_attack(
                "blackbox",
                str(tmp / "model.pt"),
                str(tmp / "cifar10.pt"),
                str(tmp / "metrics.json"),
                str(tmp / "samples.pt"),
                attack,
                attacker_path=str(tmp / "attacker.pt"),
                checkpoint=str(tmp / "attack-ckpt.pt"),
            ),
            device,
            repeats=1,
        )
        record("inverse_network (blackbox)", sizes["aux"], attack["epochs"], seconds, full_attack_epochs)
    print(f"wrote {args.out / 'paper_scale.csv'}, {args.out / 'paper_scale.md'}")


if __name__ == "__main__":
    sys.exit(main())
