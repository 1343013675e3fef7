"""The paper's figures from our runs (seaborn/matplotlib): Figure 4's reconstruction grid, the
privacy-utility plot, the criteria plot (MI, delta(z), CEM bound vs attack MSE/SSIM, Spearman's rho), and
Figure 2's depth study (a clear 'no depth runs' panel until depth runs exist)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from adjustText import adjust_text  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from ciprivacy.io import load_json, load_torch  # noqa: E402
from ciprivacy.reporting import layout as L  # noqa: E402
from ciprivacy.reporting.ablation import PREFIX as ABLATION_PREFIX  # noqa: E402
from ciprivacy.reporting.ablation import VARIANTS as ABLATION_VARIANTS
from ciprivacy.reporting.claims import depth_frame  # noqa: E402
from ciprivacy.reporting.results import KEYS, best_attack, target_wide  # noqa: E402

SCENARIO_LABELS = {
    "whitebox": "white-box rMLE",
    "blackbox": "black-box Gen",
    "graybox": "gray-box Gen",
    "glass": "GLASS",
    "glass++": "GLASS++",
}
CEM_SUFFIX = "+cem"
ABLATION_LABELS = dict(ABLATION_VARIANTS)
# The unit a split depth counts, per base architecture (the models' split_block): the depth
# axis of Figure 2 is drawn per architecture, since these units differ.
DEPTH_UNITS = {
    "cnn": "convolution blocks on the edge",
    "resnet18": "basic blocks after the stem",
    "vgg16": "convolutions on the edge",
}


def _label(defense: str) -> str:
    """A defense's name as the tables print it: 'Noise', 'SiftFunnel + CEM', 'SiftFunnel w/o
    dCor (nonlinear)', rather than the config names ('noise+cem', 'siftfunnel_no_dcor')."""
    if defense.endswith(CEM_SUFFIX):
        return f"{_label(defense[: -len(CEM_SUFFIX)])} + CEM"
    if defense in ABLATION_LABELS and defense.startswith(ABLATION_PREFIX):
        return f"SiftFunnel {ABLATION_LABELS[defense]}"
    return L.label(defense)


def _family(defense: str) -> str:
    """The legend group of a defense: its paper family, '<family> + CEM' for a CEM variant,
    'SiftFunnel ablation' for a siftfunnel_no_* variant, 'unprotected' only for itself."""
    if defense.endswith(CEM_SUFFIX):
        return f"{_family(defense[: -len(CEM_SUFFIX)])} + CEM"
    if defense.startswith(ABLATION_PREFIX):
        return "SiftFunnel ablation"
    return L.family(defense) or ("unprotected" if defense == "unprotected" else "other")


def _save(fig, output: str) -> None:
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _image(ax, image) -> None:
    img = image.permute(1, 2, 0).numpy()
    gray = img.shape[-1] == 1
    ax.imshow(img[..., 0] if gray else img, cmap="gray" if gray else None, vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def figure4(sample_files: Sequence[str], metric_files: Sequence[str], output: str, title: str = "", n: int = 4) -> None:
    """Rows: the originals, then one row per defense; column blocks: one per attack scenario,
    the same `n` test images in each. `metric_files[i]` names the run of `sample_files[i]`."""
    runs = {}
    for samples, metrics in zip(sample_files, metric_files):
        meta = load_json(metrics)
        runs[(meta["defense"], meta["scenario"])] = load_torch(samples)
    defenses = L.row_order(d for d, _ in runs)
    scenarios = [s for s in SCENARIO_LABELS if any(k[1] == s for k in runs)]
    first = next(iter(runs.values()))
    for key, run in runs.items():
        if not (run["test_index"][:n] == first["test_index"][:n]).all():
            raise ValueError(f"run {key} reconstructed other test images than the first run")
    n = min(n, *(len(r["reconstructed"]) for r in runs.values()))
    rows, cols = len(defenses) + 1, len(scenarios) * n
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(0.9 * cols + 1.6, 0.95 * rows + 0.6),
        squeeze=False,
        gridspec_kw={"wspace": 0.05, "hspace": 0.08},
    )
    for b, scenario in enumerate(scenarios):
        for j in range(n):
            col = b * n + j
            _image(axes[0, col], first["original"][j])
            for i, defense in enumerate(defenses, start=1):
                run = runs.get((defense, scenario))
                if run is None:
                    axes[i, col].axis("off")
                else:
                    _image(axes[i, col], run["reconstructed"][j])
        axes[0, b * n].set_title(SCENARIO_LABELS[scenario], loc="left", fontsize=9)
    for i, label in enumerate(["original", *(_label(d) for d in defenses)]):
        axes[i, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:  # above the scenario titles: matplotlib's default y overlaps them on short grids
        top = axes[0, 0].get_position().y1
        fig.suptitle(title, fontsize=11, y=top + 0.32 / fig.get_figheight(), va="bottom")
    _save(fig, output)


def _per_seed(tidy: pd.DataFrame, dataset: str, arch: str) -> pd.DataFrame:
    target = target_wide(tidy)
    best = best_attack(tidy)[[*KEYS, "ssim", "mse", "scenario"]].rename(
        columns={"ssim": "best_ssim", "mse": "best_mse", "scenario": "best_scenario"}
    )
    frame = target.merge(best, on=KEYS, how="inner")
    frame = frame[(frame["dataset"] == dataset) & (frame["arch"] == arch)].copy()
    frame["family"] = frame["defense"].map(_family)
    frame["label"] = frame["defense"].map(_label)
    return frame


def privacy_utility(tidy: pd.DataFrame, dataset: str, arch: str, output: str) -> None:
    """Test accuracy against the best attack's SSIM and against MI: one point per defense
    (mean over seeds), error bars = standard deviation over seeds."""
    frame = _per_seed(tidy, dataset, arch)
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    handles, labels = [], []
    if frame.empty:
        for ax in axes:
            ax.text(0.5, 0.5, f"no runs for {dataset}/{arch}", ha="center", va="center", transform=ax.transAxes)
    for ax, x, xlabel in zip(
        axes,
        ("best_ssim", "mi"),
        (
            "SSIM of the best attack, per image (lower = more private)",
            "MI estimate of I(x; z), nats (lower = more private)",
        ),
    ):
        if frame.empty or x not in frame:
            continue
        stats = frame.groupby(["defense", "label", "family"])[[x, "test_acc_pct"]].agg(["mean", "std"]).reset_index()
        stats.columns = ["_".join(c).strip("_") for c in stats.columns]
        sns.scatterplot(data=stats, x=f"{x}_mean", y="test_acc_pct_mean", hue="family", style="family", s=70, ax=ax)
        ax.errorbar(
            stats[f"{x}_mean"],
            stats["test_acc_pct_mean"],
            xerr=stats[f"{x}_std"].fillna(0),
            yerr=stats["test_acc_pct_std"].fillna(0),
            fmt="none",
            ecolor="0.5",
            elinewidth=0.8,
            capsize=2,
        )
        texts = [
            ax.text(row[f"{x}_mean"], row["test_acc_pct_mean"], row["label"], fontsize=7) for _, row in stats.iterrows()
        ]
        # Labels of nearby defenses overlapped: adjustText moves them apart, a thin line to each point.
        adjust_text(texts, ax=ax, arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5})
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (%)")
        handles, labels = ax.get_legend_handles_labels()
        if ax.get_legend() is not None:  # one legend for both panels, outside them (it hid points)
            ax.get_legend().remove()
    seeds = frame["seed"].nunique() if not frame.empty else 0
    bars = "error bars: std over seeds" if seeds > 1 else "one seed, so no error bars"
    fig.suptitle(f"Privacy vs utility, {dataset} / {arch} ({seeds} seed(s); {bars})", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.84 if handles else 1, 1))
    if handles:
        fig.legend(
            handles, labels, loc="center left", bbox_to_anchor=(0.845, 0.5), fontsize=8, title="family", frameon=False
        )
    _save(fig, output)


# The criteria compared with attack success: column of target_wide -> axis label.
CRITERIA = {
    "mi": "MI estimate of I(x; z) (nats)",
    "delta_z": "δ(z): non-zero elements of z",
    "cem_mi_bound": "CEM bound on I(x; z + noise) (nats)",
}
CRITERIA_SHORT = {"mi": "MI", "delta_z": "δ(z)", "cem_mi_bound": "CEM bound"}  # panel titles
# Attack metric -> (axis label, the sign of rho a good criterion has): more information in z
# should mean a better reconstruction, i.e. a lower MSE (rho < 0) and a higher SSIM (rho > 0).
CRITERIA_ATTACK = {
    "mse": ("MSE of the best attack, per element\n(higher = more private)", -1),  # two lines: fits a short panel
    "ssim": ("SSIM of the best attack, per image\n(lower = more private)", +1),
}
CRITERIA_COLUMNS = [
    "criterion",
    "attack_metric",
    "spearman_rho",
    "p_value",
    "n_runs",
    "expected_sign",
    "agreement",
    "status",
]
VIOLATION_COLUMNS = [*KEYS, "scenario", "mse", "cem_mse_bound"]


def _log_x(ax, values: pd.Series) -> str:
    """Log x axis (symlog when a value is <= 0, as an MI estimate near 0 can be) where the
    criterion spans two or more decades: on a linear axis one large value (an unprotected
    ResNet's) pressed every other run against the y axis. Spearman's rho uses ranks only, so
    the log axis shows what it measures. Returns the axis-label suffix."""
    values = values.dropna()
    positive = values[values > 0]
    if len(positive) < 2 or positive.max() < 100 * positive.min():
        return ""
    if (values <= 0).any():  # linear up to the largest |value <= 0| (estimates of about 0), log beyond
        linthresh = float(max(positive.min(), -values.min()))
        ax.set_xscale("symlog", linthresh=linthresh)
        ax.set_xlim(left=-2 * linthresh)  # the autoscaled margin opened empty negative decades
        return " (symlog scale)"
    ax.set_xscale("log")
    return " (log scale)"


def violations_path(table: str) -> Path:
    """Where `criteria` writes the runs that beat the CEM MSE bound: next to `table`."""
    path = Path(table)
    return path.with_name(f"{path.stem}_bound_violations.csv")


def _spearman(frame: pd.DataFrame, x: str, y: str) -> tuple[float, float, int, str]:
    """Spearman's rho, its p-value, the number of runs with both values, and a status:
    'measured', 'not measured' (no run has `x`), 'too few runs' (< 3) or 'constant'
    (one side takes a single value, where rho is undefined)."""
    nan = float("nan")
    if x not in frame or frame[x].isna().all():
        return nan, nan, 0, "not measured"
    ok = frame.dropna(subset=[x, y])
    if len(ok) < 3:
        return nan, nan, len(ok), "too few runs"
    if ok[x].nunique() < 2 or ok[y].nunique() < 2:
        return nan, nan, len(ok), "constant"
    rho, p = spearmanr(ok[x], ok[y])
    return float(rho), float(p), len(ok), "measured"


def bound_violations(frame: pd.DataFrame) -> pd.DataFrame:
    """The runs of `frame` (target_wide merged with best_attack) whose best attack reached an
    MSE below the run's `cem_mse_bound`: the Gaussian-input assumption behind that bound fails
    there (see ciprivacy.metrics.cem). Runs without a bound are not checked."""
    if "cem_mse_bound" not in frame:
        return pd.DataFrame(columns=VIOLATION_COLUMNS)
    below = frame[frame["cem_mse_bound"].notna() & frame["mse"].notna() & (frame["mse"] < frame["cem_mse_bound"])]
    return below[VIOLATION_COLUMNS].sort_values(KEYS).reset_index(drop=True)


def criteria(tidy: pd.DataFrame, output: str, table: str) -> pd.DataFrame:
    """Which privacy criterion predicts attack success? MI, delta(z) and the CEM bound
    `cem_mi_bound` (rows) against the best attack on z's MSE and SSIM (columns), one point per
    run (dataset, arch, defense, seed), with Spearman's rho, p-value and n in each panel.

    `table` (CSV) gets one row per criterion x attack metric (CRITERIA_COLUMNS): `expected_sign`
    is the sign a good criterion's rho has (-1 for MSE, +1 for SSIM), `agreement` = rho x
    expected_sign (1: ranks the runs exactly as the attack does; negative: backwards) and
    `status` says why rho is missing ('not measured', 'too few runs', 'constant'); a criterion
    missing from `tidy` gets a 'not measured' panel. Runs whose best-attack MSE is below their
    `cem_mse_bound` are marked (red x) in the MSE panels and written to
    `<table stem>_bound_violations.csv` (VIOLATION_COLUMNS; header only when there are none).
    The best attack is best_attack's default, the attacks on the transmitted z only."""
    target = target_wide(tidy)
    best = best_attack(tidy)
    best = best[[*KEYS, "scenario", *(m for m in CRITERIA_ATTACK if m in best)]]
    frame = target.merge(best, on=KEYS, how="inner")
    for metric in CRITERIA_ATTACK:
        if metric not in frame:
            frame[metric] = float("nan")
    frame["run"] = frame["dataset"] + " / " + frame["arch"]
    runs = sorted(frame["run"].unique())
    violations = bound_violations(frame)
    flagged = frame.merge(violations[KEYS], on=KEYS, how="inner")

    sns.set_theme(style="whitegrid", context="paper")
    # At most ~0.75 high per unit width: the report's viewer scales an image to its width and
    # centres it vertically, so a taller one lost its top (title, verdicts) off screen.
    fig, axes = plt.subplots(len(CRITERIA), len(CRITERIA_ATTACK), figsize=(12.5, 2.8 * len(CRITERIA)), squeeze=False)
    rows, handles, labels = [], [], []  # the runs' colour legend once, beside the panels
    for i, (criterion, xlabel) in enumerate(CRITERIA.items()):
        for j, (metric, (ylabel, sign)) in enumerate(CRITERIA_ATTACK.items()):
            ax = axes[i, j]
            name = f"{CRITERIA_SHORT[criterion]} vs {metric.upper()}"
            rho, p, n, status = _spearman(frame, criterion, metric)
            rows.append(
                {
                    "criterion": criterion,
                    "attack_metric": metric,
                    "spearman_rho": rho,
                    "p_value": p,
                    "n_runs": n,
                    "expected_sign": sign,
                    "agreement": rho * sign,
                    "status": status,
                }
            )
            if status == "not measured":
                ax.text(
                    0.5,
                    0.5,
                    f"{xlabel}:\nnot measured in these runs",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    fontsize=10,
                )
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(name, fontsize=9)
                continue
            ok = frame.dropna(subset=[criterion, metric])
            sns.scatterplot(
                data=ok,
                x=criterion,
                y=metric,
                hue="run",
                hue_order=runs,
                ax=ax,
                s=60,
                legend=not handles and not ok.empty,
            )
            if ax.get_legend() is not None:
                handles, labels = ax.get_legend_handles_labels()
                ax.get_legend().remove()
            for _, row in ok.iterrows():
                ax.annotate(
                    _label(row["defense"]),
                    (row[criterion], row[metric]),
                    xytext=(4, 3),
                    textcoords="offset points",
                    fontsize=6,
                )
            marked = flagged.dropna(subset=[criterion, metric]) if metric == "mse" else flagged.iloc[0:0]
            if not marked.empty:
                ax.scatter(
                    marked[criterion],
                    marked[metric],
                    marker="x",
                    color="red",
                    s=110,
                    linewidths=2,
                    zorder=5,
                    label="MSE below the CEM bound",
                )
                ax.legend(fontsize=7)
            ax.set_xlabel(xlabel + _log_x(ax, ok[criterion]))
            ax.set_ylabel(ylabel)
            stat = f"Spearman ρ = {rho:.2f} (p = {p:.2g}, n = {n})"
            if status != "measured":
                stat = f"ρ: {status} (n = {n})"
            ax.set_title(f"{name}: {stat}", fontsize=9)
    result = pd.DataFrame(rows, columns=CRITERIA_COLUMNS)

    verdicts = []
    for metric in CRITERIA_ATTACK:
        scored = result[(result["attack_metric"] == metric) & (result["status"] == "measured")]
        if not scored.empty:
            top = scored.loc[scored["agreement"].idxmax()]
            verdicts.append(
                f"best predictor of {metric.upper()}: {CRITERIA_SHORT[top['criterion']]} "
                f"(ρ = {top['spearman_rho']:.2f})"
            )
    fig.suptitle(
        "Which criterion tracks how well the strongest attack on z reconstructs? One point per run; "
        "a good criterion has ρ < 0 with MSE and ρ > 0 with SSIM.\n"
        + ("; ".join(verdicts) or "no criterion has a defined ρ")
        + f"; {len(violations)} run(s) with MSE below the CEM bound (red x)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 0.85 if handles else 1, 1))
    if handles:
        fig.legend(
            handles,
            labels,
            loc="center left",
            bbox_to_anchor=(0.855, 0.5),
            fontsize=8,
            title="run (dataset / arch)",
            frameon=False,
        )
    _save(fig, output)
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(table, index=False)
    violations.to_csv(violations_path(table), index=False)
    return result


def figure2_depth(tidy: pd.DataFrame, output: str) -> bool:
    """Unprotected MI, delta(z) and best-attack SSIM/MSE per split depth: one row of panels per
    dataset/base architecture, since a depth counts each architecture's own unit (DEPTH_UNITS;
    one shared axis put CNN blocks and ResNet basic blocks on one scale, and the larger
    ResNet values flattened the CNN line). Without runs at two or more depths it draws a single
    panel that says so, and returns False."""
    depth = depth_frame(tidy)
    depth = depth[depth.groupby(["dataset", "base_arch"])["split"].transform("nunique") >= 2]
    sns.set_theme(style="whitegrid", context="paper")
    if depth.empty:
        fig, ax = plt.subplots(figsize=(7, 1.6))
        ax.axis("off")
        ax.text(
            0.5,
            0.5,
            "Figure 2 (depth study): no depth runs.\nIt needs unprotected targets at two or more split "
            "depths\nof one dataset/architecture (experiments.depth).",
            ha="center",
            va="center",
            fontsize=11,
        )
        _save(fig, output)
        return False
    series = list(depth.groupby(["dataset", "base_arch"]))
    panels = (
        ("mi", "MI (nats)"),
        ("delta_z", "δ(z)"),
        ("best_ssim", "best-attack SSIM (per image)"),
        ("best_mse", "best-attack MSE (per element)"),
    )
    fig, axes = plt.subplots(len(series), len(panels), figsize=(14, 3.0 * len(series)), squeeze=False)
    for r, ((dataset, base), group) in enumerate(series):
        group = group.sort_values("split")
        unit = DEPTH_UNITS.get(base, "edge blocks")
        for c, (y, label) in enumerate(panels):
            ax = axes[r, c]
            ax.plot(group["split"], group[y], marker="o", color=f"C{r}")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel(f"split depth ({unit})")
            ax.set_ylabel(label)
            ax.set_title(f"{dataset} / {base}: {label}", fontsize=9)
    fig.suptitle(
        "Figure 2: the unprotected model split at increasing depth (one row per dataset / architecture)", fontsize=10
    )
    fig.tight_layout()
    _save(fig, output)
    return True
