"""Intervals for every number the tables and claims compare.

- Test-image measures (accuracy, MSE / PSNR / SSIM per image, delta(z)): percentile bootstrap
  over the test images, ``B`` resamples (1,000 by default) with a fixed seed, so the same files
  give the same intervals. ``mean_interval`` resamples a per-image array; ``paired_interval``
  resamples two arrays of the same test images together and gives the interval of the
  difference of their means (attack vs baseline, defense vs defense).
- The paper's batch metrics (``metrics.image.paper_quality``), from per-image parts
  (``metrics.image.paper_contributions``):

  - MSE (channel-summed, a mean over images) and PSNR (a mean over batches of each batch's
    PSNR): each resample of the images is cut into batches of ``metric_batch`` in its drawn
    order (a resample is already in random order, as the authors' shuffled loader is) and the
    batch PSNRs are recomputed from the images' squared errors. Checked on synthetic data: the
    interval's half-width / 1.96 is within 10 % of the metric's spread over fresh test sets.
  - SSIM: the batch is the unit. Its 7 x 7 x 7 windows span 3 images either side, so the shares
    of neighbouring images in the SSIM map are correlated, and resampling images as if they were
    independent gave intervals 2.1 to 2.6 times too narrow (256 images in batches of 16: a spread
    of 0.0031 against 0.0067 over 100 fresh sets). Batches are independent (no window crosses
    one), so the interval is the Student-t interval of the mean of the original batches' SSIMs
    (0.0068 there; a bootstrap over batches gives 0.0065). One batch gives no interval.

- MI: the interval MINE's restarts give (``mi_ci95`` in mi.json) where they ran.
- Several seeds (``combine_seeds``): the t-interval of the seed mean, widened by the within-run
  half-widths (the seeds share the test images, so their spread does not show the test-sample
  error; the two are added in quadrature).

Intervals are at ``LEVEL`` (95 %); ``separated`` and ``contains_zero`` are the comparisons the
tables and claims make with them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ciprivacy.metrics.image import SSIM_WINDOW, ssim_counted

B = 1000
LEVEL = 0.95
SEED = 0
# Resampled index rows per chunk: about 4 M indices at a time, whatever the number of images.
CHUNK_ELEMENTS = 4_000_000

Interval = tuple[float, float]
NO_INTERVAL: Interval = (math.nan, math.nan)
PAPER_METRICS = ("mse_paper", "psnr_paper", "ssim_paper")


def resample_chunks(n: int, b: int = B, seed: int = SEED):
    """Index arrays (rows x n) of ``b`` resamples of ``n`` items with replacement, a few rows at
    a time; the same ``n``, ``b`` and ``seed`` give the same resamples."""
    rng = np.random.default_rng(seed)
    rows = max(1, min(b, CHUNK_ELEMENTS // max(1, n)))
    for start in range(0, b, rows):
        yield rng.integers(0, n, size=(min(rows, b - start), n))


def bootstrap(statistic: Callable[[np.ndarray], dict[str, np.ndarray]], n: int, b: int = B, seed: int = SEED):
    """``statistic`` evaluated on ``b`` resamples of ``n`` items: it takes an index array (rows x
    n) and returns named arrays of one value per row; the result holds ``b`` values per name."""
    parts: dict[str, list[np.ndarray]] = {}
    for idx in resample_chunks(n, b, seed):
        for name, values in statistic(idx).items():
            parts.setdefault(name, []).append(np.asarray(values, dtype=float))
    return {name: np.concatenate(values) for name, values in parts.items()}


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> Interval:
    """The central ``level`` interval of bootstrap values; no interval when any is NaN."""
    values = np.asarray(values, dtype=float)
    if values.size == 0 or np.isnan(values).any():
        return NO_INTERVAL
    tail = 100 * (1 - level) / 2
    with np.errstate(invalid="ignore"):
        lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def mean_interval(values, b: int = B, seed: int = SEED, level: float = LEVEL) -> Interval:
    """Percentile bootstrap interval of the mean of per-image ``values`` (at least two)."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return NO_INTERVAL
    return percentile_interval(
        bootstrap(lambda idx: {"mean": values[idx].mean(1)}, values.size, b, seed)["mean"], level
    )


def paired_interval(a, b_values, b: int = B, seed: int = SEED, level: float = LEVEL) -> Interval:
    """Interval of mean(a) - mean(b) over the same test images (a[i] and b[i] of image i),
    resampling the images together."""
    a, other = np.asarray(a, dtype=float), np.asarray(b_values, dtype=float)
    if a.shape != other.shape:
        raise ValueError(f"paired values need the same images: {a.shape} vs {other.shape}")
    return mean_interval(a - other, b, seed, level)


def batch_bounds(n: int, metric_batch: int) -> np.ndarray:
    """Start of each batch, and n: batches of ``metric_batch`` in order, a last batch smaller than
    the SSIM window joined to the one before (as ``metrics.image.paper_batches`` cuts)."""
    bounds = list(range(0, n, metric_batch)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < SSIM_WINDOW:
        del bounds[-2]
    return np.asarray(bounds)


class PaperParts:
    """Per-image parts of the paper's batch metrics for ``n`` images, in one order: ``mse`` (per
    element, for the batch PSNR), ``mse_paper`` (summed over channels), ``ssim_share`` (the
    image's share of its batch's SSIM map), ``batch`` and ``position`` (its original batch and
    place there, ``metrics.image.paper_contributions``), and the ``metric_batch``."""

    def __init__(self, mse, mse_paper, ssim_share, batch, position, metric_batch: int):
        self.mse = np.asarray(mse, dtype=float)
        self.mse_paper = np.asarray(mse_paper, dtype=float)
        self.ssim_share = np.asarray(ssim_share, dtype=float)
        self.batch = np.asarray(batch, dtype=np.int64)
        self.position = np.asarray(position, dtype=np.int64)
        self.metric_batch = int(metric_batch)
        shapes = {a.shape for a in (self.mse, self.mse_paper, self.ssim_share, self.batch, self.position)}
        if len(shapes) != 1 or self.mse.ndim != 1:
            raise ValueError("per-image parts must be arrays of one value per image")

    @property
    def n(self) -> int:
        return self.mse.size

    def regrouped(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """The paper's MSE and PSNR of each row of ``idx`` (rows x n image indices), its images cut
        into batches of ``metric_batch`` in the row's order."""
        idx = np.atleast_2d(idx)
        bounds = batch_bounds(idx.shape[1], self.metric_batch)
        batch_mse = np.add.reduceat(self.mse[idx], bounds[:-1], axis=1) / np.diff(bounds)
        with np.errstate(divide="ignore"):
            psnr = np.where(batch_mse > 0, 10 * np.log10(1.0 / np.maximum(batch_mse, 1e-300)), np.inf)
        return {"mse_paper": self.mse_paper[idx].mean(1), "psnr_paper": psnr.mean(1)}

    def batch_ssim(self) -> np.ndarray:
        """The SSIM of each original batch of at least 7 images: the mean of the shares of the
        images at the positions it counts (``metrics.image.ssim_counted``)."""
        sizes = np.bincount(self.batch)
        counted = ssim_counted(self.position, sizes[self.batch])
        kept = np.flatnonzero(sizes >= SSIM_WINDOW)
        total = np.bincount(self.batch, weights=np.where(counted, self.ssim_share, 0.0), minlength=sizes.size)
        return total[kept] / np.bincount(self.batch, weights=counted, minlength=sizes.size)[kept]

    def point(self) -> dict[str, float]:
        """The metrics on the original batches: equal to ``paper_quality``'s values."""
        order = np.lexsort((self.position, self.batch))
        sizes = np.bincount(self.batch)
        if any(s != self.metric_batch for s in sizes[:-1]):
            raise ValueError("the original batches are not of metric_batch images")
        ssim = self.batch_ssim()
        return {
            **{k: float(v[0]) for k, v in self.regrouped(order[None, :]).items()},
            "ssim_paper": float(ssim.mean()) if ssim.size else math.nan,
        }

    def same_batches(self, other: PaperParts) -> bool:
        return np.array_equal(self.batch, other.batch) and np.array_equal(self.position, other.position)


def paper_intervals(parts: PaperParts, b: int = B, seed: int = SEED, level: float = LEVEL) -> dict[str, Interval]:
    """Intervals of the paper's MSE and PSNR (bootstrap over images, regrouped into batches) and
    SSIM (Student-t over the original batches' SSIMs; see ``batch_t_interval``)."""
    out = {m: NO_INTERVAL for m in PAPER_METRICS}
    if parts.n >= 2:
        values = bootstrap(parts.regrouped, parts.n, b, seed)
        out.update({m: percentile_interval(values[m], level) for m in ("mse_paper", "psnr_paper")})
    out["ssim_paper"] = t_interval(parts.batch_ssim(), level)
    return out


def paired_paper_intervals(
    a: PaperParts, other: PaperParts, b: int = B, seed: int = SEED, level: float = LEVEL
) -> dict[str, Interval]:
    """Intervals of a's paper metrics minus ``other``'s on the same images in the same batches:
    MSE and PSNR by resampling the images together (each resample cut into the same batches for
    both), SSIM by the Student-t interval of the per-batch differences."""
    if a.n != other.n or not a.same_batches(other):
        raise ValueError("paired paper metrics need the same images in the same batches")
    out = {m: NO_INTERVAL for m in PAPER_METRICS}
    if a.n >= 2:

        def difference(idx):
            x, y = a.regrouped(idx), other.regrouped(idx)
            return {m: x[m] - y[m] for m in x}

        values = bootstrap(difference, a.n, b, seed)
        out.update({m: percentile_interval(values[m], level) for m in ("mse_paper", "psnr_paper")})
    out["ssim_paper"] = t_interval(a.batch_ssim() - other.batch_ssim(), level)
    return out


def t_interval(values, level: float = LEVEL) -> Interval:
    """Student-t interval of the mean of a few values (seeds, restarts)."""
    from scipy.special import stdtrit  # the t quantile; scipy.stats takes a second to import

    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size < 2:
        return NO_INTERVAL
    half = stdtrit(values.size - 1, 0.5 + level / 2) * values.std(ddof=1) / math.sqrt(values.size)
    return float(values.mean() - half), float(values.mean() + half)


def combine_seeds(values, lows, highs, level: float = LEVEL) -> Interval:
    """The interval of a mean over seeds. One seed: its own interval. Several: the t-interval of
    the seed mean, its half-width combined in quadrature with the mean squared within-run
    half-width (the test-sample error the seeds share), centred on the seed mean."""
    values, lows, highs = (np.asarray(v, dtype=float) for v in (values, lows, highs))
    if values.size == 1:
        return float(lows[0]), float(highs[0])
    lo, hi = t_interval(values, level)
    if math.isnan(lo):
        return NO_INTERVAL
    within = (highs - lows) / 2
    within = within[~np.isnan(within)]
    half = math.sqrt(((hi - lo) / 2) ** 2 + (float(np.mean(within**2)) if within.size else 0.0))
    mean = float(np.nanmean(values))
    return mean - half, mean + half


def has_interval(lo: float, hi: float) -> bool:
    return lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi))


def separated(a: Interval, b: Interval) -> bool:
    """Whether two intervals do not overlap. A missing interval counts as its point value: pass
    (value, value)."""
    return a[1] < b[0] or b[1] < a[0]


def contains_zero(lo: float, hi: float) -> bool:
    return has_interval(lo, hi) and lo <= 0 <= hi
