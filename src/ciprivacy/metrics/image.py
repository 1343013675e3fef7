"""Reconstruction quality: MSE, PSNR and SSIM per image (scikit-image), averaged over images;
and the same three computed the way the paper's numbers were (``paper_quality``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
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
    import torch  # here: the report jobs read SSIM_WINDOW without torch

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


def ssim_counted(position, size):
    """Whether the batch SSIM averages the image at ``position`` of a batch of ``size`` images
    (numbers or arrays): scikit-image crops (window - 1) / 2 = 3 voxels from each end of every
    axis of the SSIM map before its mean, the image axis of an N x C x H x W batch too, so the
    first and last 3 images of a batch count nothing (their voxels only feed their neighbours'
    windows)."""
    pad = (SSIM_WINDOW - 1) // 2
    return (np.asarray(position) >= pad) & (np.asarray(position) < np.asarray(size) - pad)


def paper_contributions(
    original: torch.Tensor, reconstructed: torch.Tensor, batch_size: int, seed: int
) -> dict[str, np.ndarray]:
    """Each image's part in ``paper_quality``'s batch metrics, from which ``ciprivacy.metrics.stats``
    recomputes them and their intervals. Per image, in the input's order:

    - ``mse_paper``: its squared error summed over the colour channels, averaged over pixels (the
      paper's MSE is the mean of these); a batch's PSNR is 10 log10(C / their batch mean);
    - ``ssim_paper_share``: the mean of the batch SSIM map's voxels centred in this image
      (``structural_similarity(..., channel_axis=1, full=True)`` on its batch, over its C x
      (H - 6) x (W - 6) voxels away from the image border, the ones the SSIM averages);
    - ``paper_batch`` and ``paper_position``: its batch among ``paper_batches(n, batch_size, seed)``
      and its place in it. The batch SSIM is exactly the mean of the shares of the images at the
      positions ``ssim_counted`` keeps (each counts the same number of voxels).

    A share is computed with the image's neighbours in its original batch (the SSIM windows span
    3 images either side; the first and last 3 of a batch see reflected neighbours), so the
    shares of neighbours are correlated: the batch, not the image, is the unit their intervals
    resample. Fewer than 7 images give NaN shares, as ``paper_quality`` gives a NaN SSIM.
    """
    from skimage.metrics import structural_similarity

    if original.shape != reconstructed.shape:
        raise ValueError(
            f"shapes differ: original {tuple(original.shape)} vs reconstruction {tuple(reconstructed.shape)}"
        )
    n = original.shape[0]
    a = original.detach().double().cpu().numpy()
    b = reconstructed.detach().double().cpu().clamp(0, 1).numpy()
    pad = (SSIM_WINDOW - 1) // 2
    share = np.full(n, np.nan)
    batch = np.zeros(n, dtype=np.int64)
    position = np.zeros(n, dtype=np.int64)
    for k, idx in enumerate(paper_batches(n, batch_size, seed)):
        batch[idx], position[idx] = k, np.arange(len(idx))
        if len(idx) >= SSIM_WINDOW:
            _, full = structural_similarity(a[idx], b[idx], data_range=1.0, channel_axis=1, full=True)
            share[idx] = full[:, :, pad:-pad, pad:-pad].mean(axis=(1, 2, 3))
    return {
        "mse_paper": a.shape[1] * ((a - b) ** 2).reshape(n, -1).mean(1),
        "ssim_paper_share": share,
        "paper_batch": batch,
        "paper_position": position,
    }


def per_image_scores(original: torch.Tensor, reconstructed: torch.Tensor, metric_batch: int, seed: int) -> dict:
    """One value per image, in the input's order: MSE, PSNR and SSIM per image
    (``per_image_quality``), and its parts of the paper's batch metrics (``paper_contributions``:
    channel-summed MSE, share of its batch's SSIM map, its batch and position there)."""
    return {
        **per_image_quality(original, reconstructed),
        **paper_contributions(original, reconstructed, metric_batch, seed),
    }
