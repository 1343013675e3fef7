import math

import numpy as np
import pytest
import torch

from ciprivacy.metrics import effective_information, reconstruction_quality
from ciprivacy.metrics.image import per_image_quality


def test_identical_images_are_perfect():
    x = torch.rand(3, 3, 16, 16)
    q = reconstruction_quality(x, x.clone())
    assert q["mse"] == 0.0
    assert q["ssim"] == pytest.approx(1.0)
    assert math.isinf(q["psnr"])


def test_constant_offset_has_closed_form_mse_and_psnr():
    x = torch.full((2, 3, 16, 16), 0.4)
    y = x + 0.1
    q = reconstruction_quality(x, y)
    assert q["mse"] == pytest.approx(0.01)
    assert q["psnr"] == pytest.approx(20.0)  # 10 log10(1 / 0.01)


def test_ssim_of_uncorrelated_noise_is_near_zero_and_means_are_per_image():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 32, 32, generator=gen)
    y = torch.rand(4, 1, 32, 32, generator=gen)
    per = per_image_quality(x, y)
    assert abs(per["ssim"].mean()) < 0.05
    q = reconstruction_quality(x, y)
    assert q["psnr"] == pytest.approx(float(np.mean(per["psnr"])))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        reconstruction_quality(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 4, 4))


def test_delta_z_counts_nonzero_feature_elements_per_sample():
    images = torch.zeros(5, 1, 4, 4, dtype=torch.uint8)
    images[:, :, :2, :] = 255  # 8 of 16 pixels are non-zero in every image

    def observe(x):
        return torch.cat([x, torch.zeros_like(x)], dim=1)  # 8 non-zero of 32

    assert effective_information(observe, images, batch_size=2) == pytest.approx(8.0)
