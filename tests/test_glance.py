"""The page the HTML report opens on: the claims' verdicts and the main comparison."""

from __future__ import annotations

import math

import pandas as pd

from ciprivacy.reporting.glance import claims_html, main_table_html, write_glance


def _claims() -> pd.DataFrame:
    rows = [
        (1, "rigorous", "photos", "cnn", "holds"),
        (1, "authors", "photos", "cnn", "fails"),
        (2, "rigorous", "photos", "cnn", "holds"),
        (2, "rigorous", "faces", "cnn", "undecided"),
        (5, "rigorous", "", "", "not run"),
    ]
    return pd.DataFrame(
        [dict(claim=c, statement=f"claim {c}", protocol=p, dataset=d, arch=a, verdict=v) for c, p, d, a, v in rows]
    )


def _table() -> pd.DataFrame:
    nan = math.nan
    base = dict(status="ran", at_chance=False, mi_zero=False, mle_failed=0.0, gen_failed=0.0)
    return pd.DataFrame(
        [
            dict(base, label="Unprotected", test_acc_pct=94.2, mle_ssim=0.98, gen_ssim=0.92, mi=0.7, delta_z=4904.0),
            dict(
                base,
                label="Dropping",
                test_acc_pct=10.0,
                at_chance=True,
                mle_ssim=0.39,
                mle_failed=1.0,
                gen_ssim=0.87,
                mi=-1e-6,
                mi_zero=True,
                delta_z=982.0,
            ),
            dict(base, label="SiftFunnel", test_acc_pct=93.0, mle_ssim=0.2, gen_ssim=0.1, mi=0.01, delta_z=234.0),
            dict(base, label="SiftFunnel", test_acc_pct=nan, mle_ssim=nan, gen_ssim=0.05, mi=nan, delta_z=nan),
            dict(
                base,
                status="baseline",
                label="Baseline: aux mean",
                test_acc_pct=nan,
                mle_ssim=0.01,
                gen_ssim=0.01,
                mi=nan,
                delta_z=nan,
            ),
        ]
    )


def test_the_landing_page_gives_each_claim_one_verdict_column_per_protocol():
    page = claims_html(_claims())
    head = page.split("</thead>")[0]
    assert head.index("rigorous") < head.index("authors")
    rows = page.split("<tr>")[2:]
    assert len(rows) == 3  # claims 1, 2 and 5, once each
    assert "holds" in rows[0] and "fails" in rows[0]
    # two datasets that disagree are named; a claim without runs in a protocol shows a dash
    assert "photos/cnn: <b>holds</b>" in rows[1] and "faces/cnn: <b>undecided</b>" in rows[1]
    assert "not run" in rows[2] and "<td>—</td>" in rows[2]


def test_the_landing_tables_mark_failed_attacks_models_at_chance_and_zero_mi_and_leave_baselines_out():
    page = main_table_html(_table())
    assert "Baseline" not in page
    assert "GLASS" not in page  # a scenario the run did not attack is not a column
    dropping = page.split("<tr>")[3]
    assert "10.0 ‡" in dropping and "0.390 †" in dropping and "≈0 (-1e-06)" in dropping
    assert "SiftFunnel (black-box Gen)" in page  # the paper's second row of a gray-box defense


def test_the_landing_fragment_is_written_from_the_claims_and_main_table_files(tmp_path):
    claims, table = tmp_path / "claims.csv", tmp_path / "table2.csv"
    _claims().to_csv(claims, index=False)
    _table().to_csv(table, index=False)
    out = tmp_path / "summary" / "at_a_glance.html"
    write_glance(str(claims), {"rigorous": ("table2_photos_cnn", str(table))}, str(out))
    text = out.read_text()
    assert "table2_photos_cnn, rigorous protocol" in text and "0.390 †" in text and "10.0 ‡" in text


def test_the_landing_table_is_the_main_comparison_under_its_own_protocols():
    """demo-all: the X-ray study's table sorts first by name, but the main comparison (eleven
    defenses) is the one the landing page shows, under the protocols its experiment runs."""
    from pathlib import Path

    import yaml

    from ciprivacy import config as S
    from ciprivacy.experiments import experiments
    from ciprivacy.reporting import plan

    root = Path(__file__).resolve().parents[1]
    names = ("config.yaml", "presets/demo.yaml", "presets/demo-all.yaml")
    config = S.canonical(S.check_config([(n, yaml.safe_load((root / n).read_text())) for n in names]))
    found, _ = experiments(config, unavailable=lambda name: None)
    specs = plan.table_specs(found)
    assert plan.main_table(specs, found) == "table2_photos_cnn"
    assert plan.main_table_protocols(specs, found) == ["rigorous", "authors"]
    assert plan.main_table({}, found) is None and plan.main_table_protocols({}, found) == []
