"""Reconstruction quality: MSE, PSNR and SSIM per image (scikit-image), averaged over images;
and the same three computed the way the paper's numbers were (``paper_quality``)."""

from __future__ import annotations

import logging

import numpy as np
import torch

log = logging.getLogger(__name__)


def per_image_quality(original: torch.Tensor, reconstructed: torch.Tensor) -> dict[str, np.ndarray]:
    """Images in [0, 1], N x C x H x W. PSNR of a perfect reconstruction is inf (skimage's value)."""
    # Imported here: skimage.metrics pulls in scipy.stats (~0.7 s), paid only by jobs that score images.
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    if original.shape != reconstructed.shape:
        raise ValueError(
            f"shapes differ: original {tuple(original.shape)} vs reconstruction {tuple(reconstructed.shape)}"
        )
    a = original.detach().double().cpu().numpy()
    b = reconstructed.detach().double().cpu().clamp(0, 1).numpy()
    mse = ((a - b) ** 2).reshape(a.shape[0], -1).mean(1)
    psnr = np.empty(a.shape[0])
    ssim = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        with np.errstate(divide="ignore"):
            psnr[i] = peak_signal_noise_ratio(a[i], b[i], data_range=1.0)
        ssim[i] = structural_similarity(a[i], b[i], data_range=1.0, channel_axis=0)
    return {"mse": mse, "psnr": psnr, "ssim": ssim}


def reconstruction_quality(original: torch.Tensor, reconstructed: torch.Tensor) -> dict[str, float]:
    """Means over images, as the paper's tables report them."""
    return {k: float(v.mean()) for k, v in per_image_quality(original, reconstructed).items()}


SSIM_WINDOW = 7  # scikit-image's default window: a batch needs at least this many images


def paper_batches(n: int, batch_size: int, seed: int) -> list[np.ndarray]:
    """The test batches the authors' shuffled loader gives, as we draw them: a permutation of
    range(n) seeded by ``seed``, cut every ``batch_size``; a last batch smaller than the SSIM
    window joins the one before."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))).numpy()
    bounds = list(range(0, n, batch_size)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < SSIM_WINDOW:
        del bounds[-2]
    return [order[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


def paper_quality(original: torch.Tensor, reconstructed: torch.Tensor, batch_size: int, seed: int) -> dict[str, float]:
    """MSE, PSNR and SSIM as the authors' code computes the paper's numbers, to set ours beside them.

    - MSE: squared error summed over colour channels, averaged over pixels and images (C x the
      per-element MSE; for RGB the paper's PSNR = 10 log10(3 / MSE) in every row).
    - PSNR: 10 log10(1 / per-element MSE) of each test batch, averaged over batches.
    - SSIM: scikit-image on each N x C x H x W batch with ``channel_axis=1``, i.e. an SSIM over
      the (N, H, W) volume whose 7x7x7 windows span neighbouring images, averaged over batches.
    The images are shuffled with ``seed`` first, as the authors' test loader shuffles, and cut
    into batches of ``batch_size``; a last batch smaller than the window joins the one before.
    Fewer images than the window give NaN SSIM.
    """
    from skimage.metrics import structural_similarity

    if original.shape != reconstructed.shape:
        raise ValueError(
            f"shapes differ: original {tuple(original.shape)} vs reconstruction {tuple(reconstructed.shape)}"
        )
    if batch_size < SSIM_WINDOW:
        raise ValueError(
            f"metric batch_size must be at least {SSIM_WINDOW} (the SSIM window spans images), got {batch_size}"
        )
    n, channels = original.shape[0], original.shape[1]
    if n == 0:
        raise ValueError("paper_quality needs at least one image, got none")
    if n < SSIM_WINDOW:
        log.warning(
            "%d images: the paper's SSIM needs at least %d (its window spans images); ssim_paper is NaN", n, SSIM_WINDOW
        )
    a = original.detach().double().cpu().numpy()
    b = reconstructed.detach().double().cpu().clamp(0, 1).numpy()
    psnr, ssim = [], []
    for idx in paper_batches(n, batch_size, seed):
        mse = float(((a[idx] - b[idx]) ** 2).mean())
        with np.errstate(divide="ignore"):
            psnr.append(10 * np.log10(1.0 / mse) if mse > 0 else np.inf)
        if len(idx) >= SSIM_WINDOW:
            ssim.append(structural_similarity(a[idx], b[idx], data_range=1.0, channel_axis=1))
    return {
        "mse_paper": float(channels * ((a - b) ** 2).mean()),
        "psnr_paper": float(np.mean(psnr)),
        "ssim_paper": float(np.mean(ssim)) if ssim else float("nan"),
    }
