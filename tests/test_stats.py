"""Intervals (ciprivacy.metrics.stats): the bootstrap against closed forms, its determinism, the
paired version, the paper's batch metrics recomputed from per-image parts, and seeds combined."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ciprivacy.metrics import stats as S
from ciprivacy.metrics.image import paper_contributions, paper_quality, per_image_quality, ssim_counted


def test_bootstrap_interval_of_a_mean_matches_the_normal_closed_form():
    values = np.random.default_rng(1).normal(3.0, 2.0, size=20_000)
    lo, hi = S.mean_interval(values)
    half = 1.96 * values.std(ddof=1) / math.sqrt(values.size)
    assert lo == pytest.approx(values.mean() - half, abs=0.1 * half)
    assert hi == pytest.approx(values.mean() + half, abs=0.1 * half)


def test_bootstrap_interval_of_an_accuracy_matches_wilson_and_the_normal_approximation():
    correct = np.zeros(4000)
    correct[:2068] = 1  # 51.7 %
    p, n = correct.mean(), correct.size
    z = 1.96
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    wilson = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    lo, hi = S.mean_interval(correct)
    assert lo == pytest.approx(centre - wilson, abs=0.002) and hi == pytest.approx(centre + wilson, abs=0.002)
    normal = z * math.sqrt(p * (1 - p) / n)
    assert hi - lo == pytest.approx(2 * normal, rel=0.1)


def test_the_bootstrap_is_deterministic_with_its_seed_and_changes_with_it():
    values = np.random.default_rng(0).random(500)
    assert S.mean_interval(values, seed=3) == S.mean_interval(values, seed=3)
    assert S.mean_interval(values, seed=3) != S.mean_interval(values, seed=4)
    # Chunked resampling gives the same values for any number of images per chunk.
    small = S.bootstrap(lambda idx: {"m": values[idx].mean(1)}, values.size, 50, 7)["m"]
    assert small.shape == (50,) and np.array_equal(
        small, S.bootstrap(lambda i: {"m": values[i].mean(1)}, 500, 50, 7)["m"]
    )


def test_a_paired_interval_is_tighter_than_the_marginal_ones_for_correlated_values():
    rng = np.random.default_rng(2)
    common = rng.normal(0, 1, 3000)
    a, b = common + rng.normal(0.1, 0.1, 3000), common
    lo, hi = S.paired_interval(a, b)
    assert lo > 0.09 and hi < 0.11  # the difference is 0.1 +- 0.1 / sqrt(3000) * 1.96
    marginal = S.mean_interval(a)
    assert marginal[1] - marginal[0] > 5 * (hi - lo)
    with pytest.raises(ValueError, match="same images"):
        S.paired_interval(a, b[:10])


def test_too_few_values_or_nan_give_no_interval():
    assert all(math.isnan(v) for v in S.mean_interval([1.0]))
    assert all(math.isnan(v) for v in S.percentile_interval(np.array([1.0, np.nan])))
    assert not S.has_interval(*S.NO_INTERVAL)


def _pair(n: int, c: int = 3, side: int = 16, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, side, side, generator=gen)
    noise = torch.rand(n, 1, 1, 1, generator=gen) * 0.3
    return x, (x + noise * torch.randn(n, c, side, side, generator=gen)).clamp(0, 1)


def _parts(x, rec, batch, seed=0) -> S.PaperParts:
    c = paper_contributions(x, rec, batch, seed)
    return S.PaperParts(
        per_image_quality(x, rec)["mse"],
        c["mse_paper"],
        c["ssim_paper_share"],
        c["paper_batch"],
        c["paper_position"],
        batch,
    )


@pytest.mark.parametrize("n, batch", [(9, 64), (24, 12), (24, 20), (40, 7), (15, 32)])
def test_the_papers_batch_metrics_are_recomputed_exactly_from_per_image_parts(n, batch):
    x, y = _pair(n, c=3 if n != 15 else 1)
    expected = paper_quality(x, y, batch, seed=4)
    parts = _parts(x, y, batch, seed=4)
    assert parts.point() == pytest.approx(expected, rel=1e-12)
    # Regrouping the images in their original batch order gives the same MSE and PSNR.
    order = np.lexsort((parts.position, parts.batch))
    regrouped = parts.regrouped(order[None, :])
    assert regrouped["psnr_paper"][0] == pytest.approx(expected["psnr_paper"], rel=1e-12)
    intervals = S.paper_intervals(parts)
    for metric, (lo, hi) in intervals.items():
        if metric == "ssim_paper" and parts.batch.max() == 0:
            assert math.isnan(lo)  # one batch: no interval for the batch SSIM
        else:
            assert lo < expected[metric] < hi, metric


def test_the_batch_ssim_counts_no_image_within_three_of_a_batch_end():
    assert ssim_counted(np.arange(7), 7).tolist() == [False] * 3 + [True] + [False] * 3
    assert ssim_counted(np.arange(10), 10).sum() == 4


def test_paper_intervals_are_as_wide_as_the_metrics_spread_over_fresh_test_sets():
    """Half-width / 1.96 against the standard deviation of the metric over fresh sets of images of
    the same reconstruction quality. The batch SSIM is resampled by batch: resampling the images'
    shares as if independent would be about twice too narrow (neighbours' shares are correlated)."""
    n, batch = 128, 16
    fresh = [paper_quality(*_pair(n, seed=200 + s), batch, 0) for s in range(40)]
    widths = {m: [] for m in S.PAPER_METRICS}
    image_level = []
    for s in range(12):
        parts = _parts(*_pair(n, seed=s), batch)
        for m, (lo, hi) in S.paper_intervals(parts, b=300).items():
            widths[m].append((hi - lo) / 3.92)
        shares = parts.ssim_share[S.ssim_counted(parts.position, np.bincount(parts.batch)[parts.batch])]
        lo, hi = S.mean_interval(shares, b=300)
        image_level.append((hi - lo) / 3.92)
    for m in S.PAPER_METRICS:
        spread = np.std([f[m] for f in fresh], ddof=1)
        assert 0.65 < np.mean(widths[m]) / spread < 1.6, (m, np.mean(widths[m]), spread)
    assert np.mean(image_level) < 0.7 * np.std([f["ssim_paper"] for f in fresh], ddof=1)


def test_paired_paper_intervals_see_a_better_reconstruction_of_the_same_images():
    x, y = _pair(64, seed=1)
    worse = (y + 0.2 * torch.randn(y.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    diff = S.paired_paper_intervals(_parts(x, y, 16), _parts(x, worse, 16))
    assert diff["mse_paper"][1] < 0 and diff["ssim_paper"][0] > 0 and diff["psnr_paper"][0] > 0
    with pytest.raises(ValueError, match="same batches"):
        S.paired_paper_intervals(_parts(x, y, 16), _parts(x, worse, 32))


def test_seeds_combine_by_t_interval_and_within_run_half_widths_in_quadrature():
    assert S.combine_seeds([0.5], [0.4], [0.7]) == (0.4, 0.7)  # one seed: its own interval
    values = [1.0, 2.0, 3.0]
    t_lo, t_hi = S.t_interval(values)
    assert (t_hi - t_lo) / 2 == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)  # t(0.975, 2) x s / sqrt(3)
    lo, hi = S.combine_seeds(values, [0.7, 1.7, 2.7], [1.3, 2.3, 3.3])
    assert (lo + hi) / 2 == pytest.approx(2.0)
    assert (hi - lo) / 2 == pytest.approx(math.hypot((t_hi - t_lo) / 2, 0.3))
    assert S.combine_seeds(values, [np.nan] * 3, [np.nan] * 3) == pytest.approx((t_lo, t_hi))


def test_separation_and_zero():
    assert S.separated((0.1, 0.2), (0.3, 0.4)) and not S.separated((0.1, 0.35), (0.3, 0.4))
    assert S.separated((0.5, 0.5), (0.3, 0.4))  # a value without an interval is a point
    assert S.contains_zero(-0.01, 0.02) and not S.contains_zero(0.001, 0.02) and not S.contains_zero(np.nan, 1)
