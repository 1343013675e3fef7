"""Intervals, baselines and marks from result files to tables and claims: the tidy file's
ci_low / ci_high and its learned, mi_indistinguishable_from_zero and failed rows; the tables'
intervals, baseline rows, bolding and marks; the claims' holds / fails / undecided."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from ciprivacy.io import save_csv, save_json
from ciprivacy.metrics.baselines import BASELINES, score_baselines
from ciprivacy.metrics.image import paper_quality, per_image_scores, reconstruction_quality
from ciprivacy.reporting import cem_table, claims, comparison, paper_tables, results

N, SIDE, BATCH = 64, 16, 16


def smooth(n: int, seed: int) -> torch.Tensor:
    low = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(low, size=SIDE, mode="bilinear", align_corners=False)


def write_results(root, correct: dict[str, float], mi: dict[str, tuple]) -> dict[str, list[str]]:
    """A protocol's result files for unprotected (its attack works: x plus a little noise) and
    siftfunnel (its attack returns unrelated images) on dataset 'd', and the baselines."""
    x = smooth(N, 0)
    images = (x * 255).round().to(torch.uint8)
    x = images.float() / 255
    index = torch.arange(100, 100 + N)
    keys = dict(protocol="rigorous", dataset="d", arch="cnn", seed=0)
    records, per_image = score_baselines(
        images,
        index,
        (smooth(32, 1) * 255).round().to(torch.uint8),
        [dict(scenario="blackbox", seed=0, num_images=None, metric_batch=BATCH)],
        "gray",
    )
    base = root / "baselines"
    save_json(
        {"protocol": "rigorous", "dataset": "d", "baselines": BASELINES, "rmle_init": "gray", "scores": records},
        base / "baselines.json",
    )
    save_csv(per_image, base / "per_image.csv")
    files = {"evaluations": [], "mi": [], "attacks": [], "baselines": [str(base / "baselines.json")]}
    noise = torch.Generator().manual_seed(5)
    reconstructions = {
        "unprotected": (x + 0.05 * torch.randn(x.shape, generator=noise)).clamp(0, 1),
        "siftfunnel": smooth(N, 9),
    }
    for defense, rec in reconstructions.items():
        folder = root / defense
        quality = {**reconstruction_quality(x, rec), **paper_quality(x, rec, BATCH, 0)}
        save_json(
            {**keys, "defense": defense, "scenario": "blackbox", "metric_batch": BATCH, **quality},
            folder / "a/metrics.json",
        )
        save_csv(
            pd.DataFrame({"test_index": index.numpy(), **per_image_scores(x, rec, BATCH, 0)}),
            folder / "a/per_image.csv",
        )
        files["attacks"].append(str(folder / "a/metrics.json"))
        right = np.zeros(N, dtype=int)
        right[: round(correct[defense] * N)] = 1
        nonzero = np.full(N, 1000 if defense == "unprotected" else 100) + np.arange(N) % 7
        evaluation = {
            **keys,
            "defense": defense,
            "test_acc": right.mean(),
            "delta_z": nonzero.mean(),
            "edge_params": 10,
        }
        save_json({**evaluation, "chance_uniform": 0.25, "chance_majority": 0.3}, folder / "t/evaluation.json")
        save_csv(
            pd.DataFrame({"test_index": index.numpy(), "label": 0, "correct": right, "nonzero": nonzero}),
            folder / "t/per_image.csv",
        )
        files["evaluations"].append(str(folder / "t/evaluation.json"))
        value, interval = mi[defense]
        save_json(
            {**keys, "defense": defense, "mi": value, **({"mi_ci95": interval} if interval else {})},
            folder / "t/mi.json",
        )
        files["mi"].append(str(folder / "t/mi.json"))
    return files


@pytest.fixture(scope="module")
def tidy(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    files = write_results(
        root,
        correct={"unprotected": 0.9, "siftfunnel": 0.25},  # 25 % of 64: at chance (30 %)
        mi={"unprotected": (0.05, [0.04, 0.06]), "siftfunnel": (-2.7e-06, [-0.001, 0.001])},
    )
    return results.tidy_frame(files["evaluations"], files["mi"], files["attacks"], baseline_files=files["baselines"])


def value(tidy, defense, scenario, metric, column="value"):
    hit = tidy[(tidy["defense"] == defense) & (tidy["scenario"] == scenario) & (tidy["metric"] == metric)]
    assert len(hit) == 1, (defense, scenario, metric)
    return hit[column].iloc[0]


def test_every_measured_value_gets_its_interval(tidy):
    for defense in ("unprotected", "siftfunnel"):
        for metric in results.ATTACK_METRICS:
            v, lo, hi = (value(tidy, defense, "blackbox", metric, c) for c in ("value", "ci_low", "ci_high"))
            assert lo < v < hi or (metric == "ssim_paper" and lo <= v <= hi), (defense, metric)
    acc = [value(tidy, "unprotected", "target", "test_acc_pct", c) for c in ("value", "ci_low", "ci_high")]
    assert acc[0] == pytest.approx(90.625) and acc[1] < 90.625 < acc[2] and acc[2] - acc[1] > 10  # 64 images
    assert value(tidy, "unprotected", "target", "mi", "ci_low") == 0.04  # MINE's restarts, as mi.json gives them
    assert (
        value(tidy, "unprotected", "target", "delta_z", "ci_low")
        < 1003
        < value(tidy, "unprotected", "target", "delta_z", "ci_high")
    )


def test_the_marks_say_who_learned_whose_mi_is_zero_and_which_attack_failed(tidy):
    assert value(tidy, "unprotected", "target", "chance_pct") == 30.0  # the majority rate beats 1/K
    assert value(tidy, "unprotected", "target", "learned") == 1 and value(tidy, "siftfunnel", "target", "learned") == 0
    assert value(tidy, "siftfunnel", "target", "mi_indistinguishable_from_zero") == 1
    assert value(tidy, "unprotected", "target", "mi_indistinguishable_from_zero") == 0
    assert (
        value(tidy, "unprotected", "blackbox", "failed") == 0 and value(tidy, "siftfunnel", "blackbox", "failed") == 1
    )
    # The works: far below the best baseline's MSE, far above its SSIM, beyond the paired intervals.
    assert value(tidy, "unprotected", "blackbox", "mse_paper_vs_baseline", "ci_high") < 0
    assert value(tidy, "unprotected", "blackbox", "ssim_paper_vs_baseline", "ci_low") > 0
    assert value(tidy, "siftfunnel", "blackbox", "mse_paper_vs_baseline") > 0


def test_baselines_are_rows_of_their_own_kept_out_of_the_attacks(tidy):
    rows = tidy[tidy["defense"].str.startswith(results.BASELINE_PREFIX)]
    assert set(rows["defense"]) == {"baseline_rmle_start", "baseline_aux_mean", "baseline_random_aux"}
    assert set(rows["arch"]) == {results.BASELINE_ARCH} and set(rows["scenario"]) == {"blackbox"}
    assert rows["ci_low"].notna().all()
    assert set(results.best_attack(tidy)["defense"]) == {"unprotected", "siftfunnel"}


def test_seed_stats_keep_one_seeds_interval():
    stats = results.seed_stats(
        pd.DataFrame(
            [
                dict(
                    protocol="p",
                    dataset="d",
                    arch="a",
                    defense="x",
                    scenario="target",
                    seed=0,
                    metric="mi",
                    value=0.5,
                    ci_low=0.4,
                    ci_high=0.7,
                )
            ]
        )
    )
    assert stats[["mean", "ci_low", "ci_high"]].iloc[0].tolist() == [0.5, 0.4, 0.7]
    assert results.with_intervals(pd.DataFrame(columns=results.TIDY_COLUMNS))[results.INTERVAL_COLUMNS].empty


def test_the_table_shows_intervals_baselines_and_marks(tidy, tmp_path):
    table = paper_tables.defense_table(tidy, "d", "cnn")
    baselines = table[table["status"] == paper_tables.BASELINE_STATUS]
    assert list(baselines["defense"]) == ["baseline_rmle_start", "baseline_aux_mean", "baseline_random_aux"]
    assert baselines["gen_mse"].notna().all() and baselines["test_acc_pct"].isna().all()
    sf = table[table["defense"] == "siftfunnel"].set_index("gen_attack")
    assert sf.loc["graybox", "at_chance"] and sf.loc["graybox", "mi_zero"] and sf.loc["blackbox", "gen_failed"] == 1
    assert {"gen_mse_ci_low", "gen_mse_ci_high", "mi_ci_low"} <= set(table.columns)
    shown = paper_tables.display_frame(table).set_index("Defense")
    assert shown.loc["SiftFunnel (black-box Gen)", "Gen MSE↑"].endswith("† ‡")
    assert shown.loc["SiftFunnel", "Test acc (%)"].endswith("at chance")
    assert shown.loc["SiftFunnel", "MI↓"].startswith("≈0 (-2.7e-06 [-0.001, 0.001])")
    cell = shown.loc["Unprotected", "Gen MSE↑"]
    assert " [" in cell and "†" not in cell
    assert (
        shown.loc["Baseline: aux mean", "Gen SSIM↓"] != "—" and shown.loc["Baseline: aux mean", "Test acc (%)"] == "—"
    )
    # Baselines and a model at chance take no part in the bolding; an MI ≈0 leaves no MI bold.
    bold = {c: [d for d, s in shown[c].items() if s.startswith("**")] for c in shown.columns}
    assert bold["MI↓"] == [] and not any("Baseline" in d or "SiftFunnel" in d for c in bold for d in bold[c])
    paper_tables.write_defense_table(tidy, "d", "cnn", str(tmp_path / "t"))
    html = (tmp_path / "t.html").read_text()
    assert '<span class="chance">' in html and "rigorous protocol" in html
    tex = (tmp_path / "t.tex").read_text()
    assert r"$^\dagger$" in tex and r"$\approx$0" in tex and "†" not in tex
    n_cols = len(tex.split(r"\begin{tabular}{")[1].split("}")[0])
    for line in tex.split(r"\midrule", 1)[1].split(r"\bottomrule")[0].splitlines():
        if line.strip().endswith(r"\\"):
            assert line.count("&") - line.count(r"\&") == n_cols - 1, line
    assert set(pd.read_csv(tmp_path / "t.csv")["protocol"]) == {"rigorous"}


def test_the_cem_table_has_intervals_marks_and_baselines(tidy):
    renamed = tidy.replace({"defense": {"unprotected": "noise", "siftfunnel": "noise+cem"}})
    frame = cem_table.cem_table(renamed, "d", "cnn")
    assert list(frame["defense"])[:2] == ["noise", "noise+cem"] and (frame["base"] == "baseline").sum() == 3
    shown = cem_table._display(frame).set_index("Defense")
    assert " [" in shown.loc["noise", "blackbox MSE"] and shown.loc["noise+cem", "blackbox MSE"].endswith("† ‡")
    assert shown.loc["noise+cem", "Test acc (%)"].endswith("at chance")
    assert "Baseline: aux mean" in shown.index


def test_the_comparison_carries_each_protocols_interval(tidy):
    frame = comparison.paper_comparison(tidy)
    assert {"rigorous_ci_low", "rigorous_ci_high"} <= set(frame.columns)
    assert not frame["defense"].astype(str).str.startswith("baseline_").any()


# --- claims, on tidy frames with chosen intervals ---


def claim_tidy(over: dict | None = None) -> pd.DataFrame:
    """unprotected, noise, ae, siftfunnel on c/cnn, one seed; ``over``: (defense, scenario,
    metric) -> (value, ci_low, ci_high)."""
    numbers = {
        "unprotected": dict(
            acc=(88.0, 87.8, 88.2), mse=0.002, ssim=0.99, mi=(0.05, 0.04, 0.06), dz=30000, params=299520
        ),
        "noise": dict(acc=(75.0, 74.0, 76.0), mse=0.02, ssim=0.93, mi=(0.05, 0.04, 0.06), dz=60000, params=299520),
        "ae": dict(acc=(90.0, 89.0, 91.0), mse=0.05, ssim=0.80, mi=(0.03, 0.02, 0.04), dz=2600, params=2365056),
        "siftfunnel": dict(acc=(86.0, 85.8, 86.2), mse=0.2, ssim=0.5, mi=(0.01, 0.005, 0.015), dz=1000, params=1000),
    }
    rows = []
    for defense, v in numbers.items():
        key = dict(protocol="rigorous", dataset="c", arch="cnn", defense=defense, seed=0)
        target = {
            "test_acc_pct": v["acc"],
            "chance_pct": (10.0,) * 3,
            "mi": v["mi"],
            "delta_z": (v["dz"], 0.95 * v["dz"], 1.05 * v["dz"]),
            "edge_params": (v["params"],) * 3,
        }
        for metric, (val, lo, hi) in target.items():
            rows.append({**key, "scenario": "target", "metric": metric, "value": val, "ci_low": lo, "ci_high": hi})
        for metric, val in (("mse_paper", v["mse"]), ("ssim_paper", v["ssim"]), ("failed", 0.0)):
            rows.append(
                {
                    **key,
                    "scenario": "graybox",
                    "metric": metric,
                    "value": val,
                    "ci_low": 0.9 * val,
                    "ci_high": 1.1 * val,
                }
            )
    frame = pd.DataFrame(rows)
    for (defense, scenario, metric), (val, lo, hi) in (over or {}).items():
        sel = (frame["defense"] == defense) & (frame["scenario"] == scenario) & (frame["metric"] == metric)
        frame.loc[sel, ["value", "ci_low", "ci_high"]] = [val, lo, hi]
    return frame


def claim(tidy, number) -> pd.Series:
    frame = claims.evaluate_claims(tidy)
    return frame[frame["claim"] == number].iloc[0]


def test_claims_hold_fail_or_stay_undecided_by_their_intervals():
    assert [claim(claim_tidy(), c)["verdict"] for c in (1, 2, 3, 4)] == ["holds"] * 4
    # Claim 1: the change -2 [-4.2, 0.2] straddles -3.
    assert (
        claim(claim_tidy({("siftfunnel", "target", "test_acc_pct"): (86.0, 84.0, 88.0)}), 1)["verdict"] == "undecided"
    )
    # Claim 2: SiftFunnel's MSE 0.068 [0.06, 0.08] against 1.3 x AE's 0.05 [0.045, 0.055].
    over = {("siftfunnel", "graybox", "mse_paper"): (0.068, 0.06, 0.08)}
    assert claim(claim_tidy(over), 2)["verdict"] == "undecided"
    over = {("siftfunnel", "graybox", "mse_paper"): (0.05, 0.04, 0.055)}
    assert claim(claim_tidy(over), 2)["verdict"] == "fails"


def test_claim_3_with_an_mi_indistinguishable_from_zero():
    # SiftFunnel's MI clearly ~0 (a tight interval around 0), unprotected's clearly > 0: holds.
    zero = {("siftfunnel", "target", "mi"): (-2.7e-06, -0.001, 0.001)}
    row = claim(claim_tidy(zero), 3)
    assert row["verdict"] == "holds" and "≈0 (-2.7e-06" in row["evidence"]
    # ~0 but a wide interval: its upper end is above half the unprotected MI's lower end.
    assert claim(claim_tidy({("siftfunnel", "target", "mi"): (0.0, -0.03, 0.03)}), 3)["verdict"] == "undecided"
    # ~0 without an interval (no MINE restarts): could be a critic that learned nothing.
    row = claim(claim_tidy({("siftfunnel", "target", "mi"): (-2.7e-06, np.nan, np.nan)}), 3)
    assert row["verdict"] == "undecided" and "without an interval" in row["evidence"]
    # The unprotected MI ~0: no ratio to take.
    row = claim(claim_tidy({("unprotected", "target", "mi"): (0.001, -0.01, 0.012)}), 3)
    assert row["verdict"] == "undecided" and "unprotected MI ≈0" in row["evidence"]
    # SiftFunnel's MI clearly above half: fails.
    assert claim(claim_tidy({("siftfunnel", "target", "mi"): (0.04, 0.035, 0.045)}), 3)["verdict"] == "fails"


def test_a_model_at_chance_is_not_compared_and_the_claims_say_so():
    at_chance = {("siftfunnel", "target", "test_acc_pct"): (11.0, 9.5, 12.5)}  # chance 10 %
    two, three = claim(claim_tidy(at_chance), 2), claim(claim_tidy(at_chance), 3)
    assert two["verdict"] == three["verdict"] == "undecided"
    assert "at chance" in two["evidence"] and "not compared" in three["evidence"]
    # A competitor at chance is left out of claim 2 and named.
    row = claim(claim_tidy({("ae", "target", "test_acc_pct"): (10.5, 9.0, 12.0)}), 2)
    assert row["verdict"] == "holds" and "at chance, left out: ae" in row["evidence"]


def test_claim_2_names_the_utility_gap_and_uses_the_failed_marks():
    row = claim(claim_tidy({("siftfunnel", "target", "test_acc_pct"): (51.7, 50.8, 52.6)}), 2)
    assert "utility differs: siftfunnel 51.70 % [50.80, 52.60] vs ae 90.00 % [89.00, 91.00]" in row["evidence"]
    # Both Gen attacks failed (AE's and SiftFunnel's): no information either way, a tie.
    both = {
        ("ae", "graybox", "failed"): (1.0, np.nan, np.nan),
        ("siftfunnel", "graybox", "failed"): (1.0, np.nan, np.nan),
    }
    assert claim(claim_tidy(both), 2)["verdict"] == "undecided"
    # AE's attack failed, SiftFunnel's did not: SiftFunnel is not the more private.
    row = claim(claim_tidy({("ae", "graybox", "failed"): (1.0, np.nan, np.nan)}), 2)
    assert row["verdict"] == "fails" and "†failed" in row["evidence"]


def test_claims_page_counts_every_verdict(tmp_path):
    frame = claims.write_claims(claim_tidy(), str(tmp_path / "c.csv"), str(tmp_path / "c.md"), str(tmp_path / "c.html"))
    assert set(frame["verdict"]) <= set(claims.VERDICTS) and (frame["protocol"] == "rigorous").all()
    assert "undecided" in (tmp_path / "c.html").read_text()
    assert math.isnan(claims.NONE.mean)
