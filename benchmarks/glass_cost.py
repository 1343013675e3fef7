"""What GLASS's pieces cost on this machine: prior training steps and the latent search.

    python benchmarks/glass_cost.py               # demo sizes, one thread (as the demo's jobs)
    python benchmarks/glass_cost.py --paper       # also paper-size steps at 64 x 64 (slow on a CPU)
    python benchmarks/glass_cost.py --threads 2

Prints seconds per generator step of each prior family (StyleGAN2's lazy R1 step amortised over
its interval; WGAN-GP's step includes its n_critic critic updates), and seconds per attacked
image of GLASS and GLASS++ at the demo settings through the demo CNN edge (width 64, split 2,
32 x 32), plus GLASS++'s encoder epoch over a demo-sized aux split. Untrained weights: the cost
does not depend on them. Times are the fastest of ``--repeats`` runs (the machine is shared).
"""

from __future__ import annotations

import argparse
import time

import torch

from ciprivacy.attacks.glass import LatentEncoder, glass_search, train_encoder
from ciprivacy.models import create_model
from ciprivacy.priors import PRIORS, prior_settings

# Demo sizes (proposed presets/demo.yaml); the paper's are the families' defaults.
DEMO_PRIORS = {
    "dcgan": {"width": 32, "z_dim": 64, "batch_size": 64},
    "wgan_gp": {"width": 32, "z_dim": 64, "batch_size": 64},
    "stylegan2": {"width": 64, "z_dim": 64, "n_mlp": 4, "batch_size": 32},
}
PAPER_PRIORS = {
    "dcgan": {},  # DCGAN paper: ngf = ndf = 64, z 100, batch 128
    # GLASS code: 512 channels, z 512, 8 mapping layers; batch 8 instead of their 64 (64 needs
    # ~8 GB here and minutes per step on one thread); the cost grows about linearly with it
    "stylegan2": {"batch_size": 8},
}
DEMO_GLASS = {"restarts": 4, "z_steps": 20, "w_steps": 60, "w_lr": 0.05, "chunk": 256}
DEMO_GLASS_PP = {"pp_steps": 60, "chunk": 256}
DEMO_ENCODER = {"width": 16, "units": [1, 1, 1, 1], "batch_size": 32, "epochs": 1}


def fastest(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def prior_step_seconds(family: str, side: int, sizes: dict, repeats: int) -> float:
    settings = prior_settings({"family": family, "steps": 1, **sizes})
    trainer = PRIORS.get(family)((3, side, side), settings, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(settings["batch_size"], 3, side, side)
    trainer.step(1, lambda: real, gen)  # warm-up (not an R1 step)
    plain = fastest(lambda: trainer.step(1, lambda: real, gen), repeats)
    if family != "stylegan2":
        return plain
    every = settings["d_reg_every"]
    with_r1 = fastest(lambda: trainer.step(0, lambda: real, gen), repeats)
    return (with_r1 + (every - 1) * plain) / every


def search_seconds_per_image(prior, edge, images: int, pp: bool, repeats: int) -> float:
    x = torch.rand(images, 3, 32, 32)
    with torch.no_grad():
        z = edge(x)
    gen = torch.Generator().manual_seed(0)
    if pp:
        ws = prior.broadcast(prior.mean_w().expand(images, -1))
        run = lambda: glass_search(edge, z, prior, DEMO_GLASS_PP, gen, start_ws=ws, progress=False)  # noqa: E731
    else:
        run = lambda: glass_search(edge, z, prior, DEMO_GLASS, gen, progress=False)  # noqa: E731
    return fastest(run, repeats) / images


def encoder_epoch_seconds(prior, edge, aux_images: int, repeats: int) -> float:
    z_shape = tuple(edge(torch.rand(1, 3, 32, 32)).shape[1:])
    enc = LatentEncoder(z_shape, (3, 32, 32), prior.num_ws, prior.w_dim, DEMO_ENCODER["width"], DEMO_ENCODER["units"])
    aux = torch.randint(0, 256, (aux_images, 3, 32, 32), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    return fastest(lambda: train_encoder(enc, edge, prior, aux, DEMO_ENCODER, gen), repeats)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--images", type=int, default=8, help="images attacked at once (the demo's num_images)")
    p.add_argument("--aux", type=int, default=120, help="aux images of an encoder epoch (demo photos: 120)")
    p.add_argument("--paper", action="store_true", help="also paper-size prior steps at 64 x 64")
    p.add_argument("--skip-priors", action="store_true", help="only the search")
    p.add_argument("--skip-search", action="store_true", help="only the prior steps")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), fastest of {args.repeats}\n")

    print("| prior | side | sizes | s / generator step |\n| --- | --- | --- | --- |")
    runs = [] if args.skip_priors else [(f, side, DEMO_PRIORS[f], "demo") for side in (32, 64) for f in DEMO_PRIORS]
    runs += [(f, 64, PAPER_PRIORS[f], "paper") for f in PAPER_PRIORS] if args.paper else []
    for family, side, sizes, label in runs:
        seconds = prior_step_seconds(family, side, sizes, 1 if label == "paper" else args.repeats)
        shown = prior_settings({"family": family, "steps": 1, **sizes})
        desc = f"{label}: width {shown['width']}, z {shown['z_dim']}, batch {shown['batch_size']}"
        print(f"| {family} | {side} | {desc} | {seconds:.3f} |")

    if args.skip_search:
        return
    edge = create_model("cnn", 6, (3, 32, 32), width=64, split_block=2).edge.eval().requires_grad_(False)
    z_shape = tuple(edge(torch.rand(1, 3, 32, 32)).shape[1:])
    print(f"\nsearch through the demo CNN edge (z {z_shape}), {args.images} images at once")
    print(f"GLASS {DEMO_GLASS}; GLASS++ {DEMO_GLASS_PP}; encoder {DEMO_ENCODER}\n")
    print("| prior | GLASS s / image | GLASS++ s / image | encoder s / epoch |\n| --- | --- | --- | --- |")
    for family in ("dcgan", "stylegan2"):
        sizes = DEMO_PRIORS[family]
        settings = prior_settings({"family": family, "steps": 1, **sizes})
        prior = PRIORS.get(family)((3, 32, 32), settings, torch.device("cpu")).prior.eval()
        glass = search_seconds_per_image(prior, edge, args.images, False, args.repeats)
        glass_pp = search_seconds_per_image(prior, edge, args.images, True, args.repeats)
        epoch = encoder_epoch_seconds(prior, edge, args.aux, args.repeats)
        print(f"| {family} (demo) | {glass:.3f} | {glass_pp:.3f} | {epoch:.3f} |")


if __name__ == "__main__":
    main()
