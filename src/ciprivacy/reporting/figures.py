"""Original vs reconstructed test images, one row per threat scenario."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ciprivacy.io import load_torch  # noqa: E402


def _show(ax, image) -> None:
    img = image.permute(1, 2, 0).numpy()
    ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_reconstructions(
    sample_files: Sequence[str], scenarios: Sequence[str], output: str, title: str = "", n: int = 8
) -> None:
    """Top row: originals; one row per scenario below, the same test images in the same columns."""
    samples = [load_torch(p) for p in sample_files]
    originals = samples[0]["original"]
    for s, name in zip(samples, scenarios):
        if not (s["test_index"][: len(originals)] == samples[0]["test_index"][: len(s["test_index"])]).all():
            raise ValueError(f"scenario {name!r} reconstructed other test images than {scenarios[0]!r}")
    n = min(n, len(originals), *(len(s["reconstructed"]) for s in samples))
    fig, axes = plt.subplots(len(samples) + 1, n, figsize=(1.3 * n + 1.2, 1.35 * (len(samples) + 1)), squeeze=False)
    for j in range(n):
        _show(axes[0, j], originals[j])
        for i, s in enumerate(samples, start=1):
            _show(axes[i, j], s["reconstructed"][j])
    for i, label in enumerate(["original", *scenarios]):
        axes[i, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=120)
    plt.close(fig)
