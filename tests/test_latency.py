"""Deployability measures: FLOPs against the closed form, latency statistics, one row per
model and device, the CSV/Markdown writer."""

import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from ciprivacy.io import save_torch
from ciprivacy.metrics.latency import (
    FLOP_CONVENTION,
    built_latency_report,
    count_flops,
    latency_report,
    measure_built_latency,
    measure_latency,
    summarize_times,
    time_forward,
)
from ciprivacy.models import count_params
from ciprivacy.target import build_target

SMALL = {"split_block": 2, "width": 8, "dropout": 0.5}
with open("config.yaml") as _fh:
    SIFTFUNNEL = yaml.safe_load(_fh)["defenses"]["siftfunnel"]
FAST = {"devices": ["cpu"], "warmup": 1, "repeats": 5, "cpu_threads": 1}


def save_tiny_target(path, defense="unprotected", seed=0, defense_settings=None):
    """A model file as train_target writes it (untrained weights): state dict + metadata."""
    meta = {
        "dataset": "tiny",
        "arch": "cnn",
        "defense": defense,
        "seed": seed,
        "arch_settings": SMALL,
        "defense_settings": defense_settings or {},
        "num_classes": 3,
        "image_shape": [3, 16, 16],
    }
    model, _ = build_target(meta, 3, (3, 16, 16))
    save_torch({"state_dict": model.state_dict(), "meta": meta}, path)
    return str(path)


def test_flops_of_one_conv_match_the_closed_form():
    c_in, c_out, k, h, w = 3, 8, 3, 16, 12
    conv = nn.Conv2d(c_in, c_out, k, padding=1)
    assert count_flops(conv, torch.zeros(1, c_in, h, w)) == 2 * c_in * c_out * k * k * h * w  # multiply-add = 2
    strided = nn.Conv2d(c_in, c_out, 5, stride=2, padding=2, bias=False)
    assert count_flops(strided, torch.zeros(1, c_in, h, w)) == 2 * c_in * c_out * 25 * (h // 2) * (w // 2)
    assert "multiply-add = 2 FLOPs" in FLOP_CONVENTION


def test_time_forward_returns_the_requested_number_of_positive_times():
    times = time_forward(nn.Conv2d(3, 4, 3), torch.zeros(1, 3, 8, 8), warmup=2, repeats=7)
    assert times.shape == (7,) and (times > 0).all()
    stats = summarize_times(times)
    assert stats["latency_q1_ms"] <= stats["latency_median_ms"] <= stats["latency_q3_ms"]
    assert stats["latency_iqr_ms"] >= 0 and stats["latency_std_ms"] >= 0
    with pytest.raises(ValueError, match="repeat"):
        time_forward(nn.Identity(), torch.zeros(1), warmup=0, repeats=0)


def test_one_row_per_model_and_device_with_the_edge_cost(tmp_path):
    paths = [
        save_tiny_target(tmp_path / "a.pt"),
        save_tiny_target(tmp_path / "b.pt", defense="noise", seed=1, defense_settings={"sigma": 0.8}),
    ]
    frame = measure_latency(paths, {**FAST, "devices": ["cpu", "cuda"]})
    expected = 2 * (1 + torch.cuda.is_available())
    assert len(frame) == expected
    cpu = frame[frame["device"] == "cpu"].set_index("defense")
    assert list(cpu.index) == ["unprotected", "noise"] and list(cpu["seed"]) == [0, 1]
    assert (cpu["latency_median_ms"] > 0).all() and (cpu["repeats"] == 5).all() and (cpu["batch_size"] == 1).all()
    assert (cpu["threads"] == 1).all()
    # the edge: conv 3->8 at 16x16 and conv 8->16 at 8x8; noise adds no conv/matmul FLOPs
    flops = 2 * (3 * 8 * 9 * 16 * 16 + 8 * 16 * 9 * 8 * 8)
    assert (cpu["edge_flops"] == flops).all() and (cpu["edge_macs"] == flops // 2).all()
    assert (cpu["edge_params"] == 3 * 8 * 9 + 8 + 2 * 8 + 8 * 16 * 9 + 16 + 2 * 16).all()
    assert (cpu["z_shape"] == "16x4x4").all()


def test_built_models_are_measured_without_a_model_file(tmp_path):
    spec = {
        "dataset": "tiny",
        "arch": "cnn",
        "defense": "siftfunnel_no_funnel",
        "defense_type": "siftfunnel",
        "seed": 0,
        "arch_settings": SMALL,
        "num_classes": 3,
        "image_shape": [3, 16, 16],
        "defense_settings": {**SIFTFUNNEL, "funnel": False, "se_reduction": [4, 4], "cbam_ratio": 2},
    }
    frame = measure_built_latency([spec], FAST)
    model, _ = build_target(spec, 3, (3, 16, 16))
    assert len(frame) == 1 and frame["defense"].iloc[0] == "siftfunnel_no_funnel"
    assert frame["edge_params"].iloc[0] == count_params(model.edge)
    out = tmp_path / "latency.csv"
    built_latency_report([spec], FAST, str(out), str(tmp_path / "latency.md"))
    assert len(pd.read_csv(out)) == 1


def test_report_writes_csv_and_markdown(tmp_path):
    path = save_tiny_target(tmp_path / "m.pt")
    frame = latency_report([path], FAST, str(tmp_path / "out/latency.csv"), str(tmp_path / "out/latency.md"))
    back = pd.read_csv(tmp_path / "out/latency.csv")
    assert list(back.columns) == list(frame.columns) and len(back) == 1
    md = (tmp_path / "out/latency.md").read_text()
    assert "Median (ms)" in md and "multiply-add = 2 FLOPs" in md and "unprotected" in md
