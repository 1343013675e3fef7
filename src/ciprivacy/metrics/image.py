"""Reconstruction quality: MSE, PSNR and SSIM per image (scikit-image), averaged over images."""

from __future__ import annotations

import numpy as np
import torch


def per_image_quality(original: torch.Tensor, reconstructed: torch.Tensor) -> dict[str, np.ndarray]:
    """Images in [0, 1], N x C x H x W. PSNR of a perfect reconstruction is inf (skimage's value)."""
    # Imported here: skimage.metrics pulls in scipy.stats (~0.7 s), paid only by jobs that score images.
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    if original.shape != reconstructed.shape:
        raise ValueError(f"shapes differ: original {tuple(original.shape)} vs reconstruction {tuple(reconstructed.shape)}")
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
