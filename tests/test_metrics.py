import math

import numpy as np
import pytest
import torch

from ciprivacy.metrics import effective_information, reconstruction_quality
from ciprivacy.metrics.image import paper_quality, per_image_quality


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


# --- the paper's protocol (authors' code): MSE x channels, PSNR/SSIM per shuffled test batch ---


def _pair(n: int, c: int = 3, side: int = 16, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, side, side, generator=gen)
    noise = torch.rand(n, 1, 1, 1, generator=gen) * 0.3  # a different error size per image
    return x, (x + noise * torch.randn(n, c, side, side, generator=gen)).clamp(0, 1)


def test_paper_mse_sums_the_colour_channels_and_psnr_is_the_papers_relation():
    x = torch.full((8, 3, 16, 16), 0.4)
    q = paper_quality(x, x + 0.1, batch_size=32, seed=0)
    assert q["mse_paper"] == pytest.approx(0.03)  # 3 channels x 0.01
    assert q["psnr_paper"] == pytest.approx(10 * math.log10(3 / q["mse_paper"]))  # as every RGB row of the paper
    x, y = _pair(10, c=1)
    assert paper_quality(x, y, 32, 0)["mse_paper"] == pytest.approx(reconstruction_quality(x, y)["mse"])  # grey: C = 1


def test_paper_psnr_is_of_the_batch_mse_not_the_mean_of_per_image_psnr():
    x, y = _pair(12)
    q = paper_quality(x, y, batch_size=32, seed=0)  # one batch
    mse = float(((x.double() - y.double()) ** 2).mean())
    assert q["psnr_paper"] == pytest.approx(10 * math.log10(1 / mse))
    assert q["psnr_paper"] < reconstruction_quality(x, y)["psnr"]  # Jensen: the per-image mean is higher


def test_paper_ssim_is_skimage_over_the_shuffled_batch_as_one_volume():
    from skimage.metrics import structural_similarity

    x, y = _pair(9)
    order = torch.randperm(9, generator=torch.Generator().manual_seed(5))
    expected = structural_similarity(
        x[order].double().numpy(), y[order].double().numpy(), data_range=1.0, channel_axis=1
    )
    assert paper_quality(x, y, batch_size=64, seed=5)["ssim_paper"] == pytest.approx(expected)
    # Its windows span neighbouring images, so it is not the mean of per-image SSIMs.
    assert abs(expected - reconstruction_quality(x, y)["ssim"]) > 1e-3


def test_paper_batches_average_and_a_short_last_batch_joins_the_one_before():
    x, y = _pair(24)
    two = paper_quality(x, y, batch_size=12, seed=1)
    order = torch.randperm(24, generator=torch.Generator().manual_seed(1))
    halves = [float(((x[order][s].double() - y[order][s].double()) ** 2).mean()) for s in (slice(0, 12), slice(12, 24))]
    assert two["psnr_paper"] == pytest.approx(np.mean([10 * math.log10(1 / m) for m in halves]))
    # 24 = 20 + 4: the 4 left over (fewer than SSIM's 7-image window) join the first batch.
    assert paper_quality(x, y, batch_size=20, seed=1) == pytest.approx(paper_quality(x, y, batch_size=24, seed=1))


def test_paper_ssim_needs_seven_images_and_the_batch_must_hold_them():
    x, y = _pair(5)
    q = paper_quality(x, y, batch_size=32, seed=0)
    assert math.isnan(q["ssim_paper"]) and math.isfinite(q["psnr_paper"])
    with pytest.raises(ValueError, match="at least 7.*got 4"):
        paper_quality(x, y, batch_size=4, seed=0)
