"""Deployability (section 6.2 and 6.3 (4)): single-sample edge latency on CPU and GPU, edge
FLOPs and edge parameters.

The deployed edge is what the device runs per input: ``defense.observe(model.edge(x))`` (the
input normalisation, the edge layers and any perturbation the defense adds before sending).
Latency is wall-clock time of one forward pass on a batch of one image, fp32, under
``torch.inference_mode``, after warm-up passes; on CUDA each pass is bracketed by
``torch.cuda.synchronize()`` so the time covers the kernels, not only their launch.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one image: it counts
convolutions and matrix products only, a multiply-add as 2 FLOPs (a k x k conv from C_in to
C_out channels on an H x W output costs 2 C_in C_out k^2 H W), and no bias adds, batch norm,
activations, pooling or attention gating arithmetic outside convs/matmuls. ``edge_macs`` is
half of it.
"""

from __future__ import annotations

import html
import logging
import platform
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from ciprivacy.models import count_params
from ciprivacy.precision import module_layout, to_layout
from ciprivacy.runtime import configure_job, pick_device
from ciprivacy.target import Target, build_target, load_target

log = logging.getLogger(__name__)

FLOP_CONVENTION = (
    "torch FlopCounterMode: convolutions and matmuls only, one multiply-add = 2 FLOPs; bias, batch norm, "
    "activations, pooling and elementwise gating not counted"
)
DEFAULTS = {
    "devices": ["cpu", "cuda"],
    "warmup": 20,
    "repeats": 200,
    "batch_size": 1,
    "cpu_threads": None,
    "channels_last": False,
}
ID_COLUMNS = ["dataset", "arch", "defense", "seed", "device"]
COLUMNS = [
    *ID_COLUMNS,
    "device_name",
    "threads",
    "batch_size",
    "warmup",
    "repeats",
    "latency_median_ms",
    "latency_q1_ms",
    "latency_q3_ms",
    "latency_iqr_ms",
    "latency_mean_ms",
    "latency_std_ms",
    "latency_min_ms",
    "edge_params",
    "edge_flops",
    "edge_macs",
    "flop_convention",
    "z_shape",
    "torch_version",
]


def deployed_edge(target: Target) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> observe(edge(x)): everything the device computes for one input."""
    return lambda x: target.defense.observe(target.model.edge(x))


def count_flops(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> int:
    """FLOPs of ``fn(x)`` as FlopCounterMode counts them (multiply-add = 2 FLOPs)."""
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        fn(x)
    return int(counter.get_total_flops())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_forward(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, warmup: int, repeats: int) -> np.ndarray:
    """Wall-clock milliseconds of ``repeats`` calls of ``fn(x)`` after ``warmup`` untimed ones,
    each timed on its own (synchronised on CUDA)."""
    if repeats < 1:
        raise ValueError(f"latency needs at least one timed repeat, got {repeats}")
    device = x.device
    times = np.empty(repeats)
    with torch.inference_mode():
        for _ in range(warmup):
            fn(x)
        _sync(device)
        for i in range(repeats):
            start = time.perf_counter()
            fn(x)
            _sync(device)
            times[i] = (time.perf_counter() - start) * 1e3
    return times


def summarize_times(times_ms: np.ndarray) -> dict[str, float]:
    """Median and spread: quartiles, IQR, mean, standard deviation (ddof 1) and minimum, in ms."""
    q1, median, q3 = np.percentile(times_ms, [25, 50, 75])
    return {
        "latency_median_ms": float(median),
        "latency_q1_ms": float(q1),
        "latency_q3_ms": float(q3),
        "latency_iqr_ms": float(q3 - q1),
        "latency_mean_ms": float(times_ms.mean()),
        "latency_std_ms": float(times_ms.std(ddof=1)) if times_ms.size > 1 else 0.0,
        "latency_min_ms": float(times_ms.min()),
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _devices(requested: Iterable[str]) -> list[torch.device]:
    devices = []
    for name in requested:
        if name.startswith("cuda") and not torch.cuda.is_available():
            log.info("no CUDA GPU visible: skipping latency on %s", name)
            continue
        devices.append(pick_device(name))
    return devices


def _measure_target(target: Target, s: dict[str, Any], devices: list[torch.device]) -> list[dict[str, Any]]:
    """The rows of one target: FLOPs and parameters once, latency per device."""
    image_shape = tuple(target.meta["image_shape"])
    batch = int(s["batch_size"])
    gen = torch.Generator().manual_seed(int(s.get("seed", 0)))
    x_cpu = torch.rand(batch, *image_shape, generator=gen)
    target.model.to("cpu").eval()
    edge = deployed_edge(target)
    flops = count_flops(edge, x_cpu[:1])
    with torch.inference_mode():
        z_shape = list(edge(x_cpu[:1]).shape[1:])
    common = {
        **target.ident,
        "batch_size": batch,
        "warmup": int(s["warmup"]),
        "repeats": int(s["repeats"]),
        "edge_params": count_params(target.model.edge),
        "edge_flops": flops,
        "edge_macs": flops // 2,
        "flop_convention": FLOP_CONVENTION,
        "z_shape": "x".join(map(str, z_shape)),
        "torch_version": torch.__version__,
    }
    rows = []
    channels_last = bool(s["channels_last"])
    for device in devices:
        module_layout(target.model.to(device), channels_last).eval()
        x = to_layout(x_cpu.to(device), channels_last)
        times = time_forward(edge, x, int(s["warmup"]), int(s["repeats"]))
        row = {
            **common,
            "device": device.type,
            "device_name": _device_name(device),
            "threads": torch.get_num_threads() if device.type == "cpu" else None,
            **summarize_times(times),
        }
        rows.append(row)
        log.info(
            "%s/%s/%s seed %s on %s: median %.3f ms (IQR %.3f), %d FLOPs",
            row["dataset"],
            row["arch"],
            row["defense"],
            row["seed"],
            device,
            row["latency_median_ms"],
            row["latency_iqr_ms"],
            flops,
        )
    target.model.to("cpu")
    return rows


def _prepare(settings: dict[str, Any]) -> tuple[dict[str, Any], list[torch.device]]:
    s = {**DEFAULTS, **settings}
    configure_job()
    if s["cpu_threads"]:
        torch.set_num_threads(int(s["cpu_threads"]))
    return s, _devices(s["devices"])


def measure_latency(model_paths: list[str], settings: dict[str, Any]) -> pd.DataFrame:
    """One row per (dataset, arch, defense, seed, device): single-sample latency of the
    deployed edge, its FLOPs (on one image) and parameters, for each trained target file
    (loaded with ``load_target``; the ids come from its metadata).

    settings (each optional, DEFAULTS otherwise): ``devices`` (list of 'cpu', 'cuda',
    'cuda:N'; CUDA ones are skipped when no GPU is visible), ``warmup`` (untimed passes),
    ``repeats`` (timed passes), ``batch_size`` (images per pass; 1 = the paper's single
    sample), ``cpu_threads`` (torch threads on CPU; null = the job's OMP_NUM_THREADS, else
    torch's default), ``channels_last`` (NHWC layout), ``seed`` (of the random input).
    """
    s, devices = _prepare(settings)
    rows = [row for path in model_paths for row in _measure_target(load_target(path, "cpu"), s, devices)]
    return pd.DataFrame(rows, columns=COLUMNS)


def measure_built_latency(specs: list[dict[str, Any]], settings: dict[str, Any]) -> pd.DataFrame:
    """As ``measure_latency``, on freshly built (untrained) models: latency, FLOPs and
    parameters do not depend on the weights. Each spec is a target's settings
    (``ciprivacy.settings.target_settings``: dataset, arch, defense, seed, arch_settings,
    defense_settings, optional arch_type / defense_type) plus ``num_classes`` and
    ``image_shape`` (C, H, W)."""
    s, devices = _prepare(settings)
    rows = []
    for spec in specs:
        torch.manual_seed(int(spec["seed"]))
        model, defense = build_target(spec, int(spec["num_classes"]), tuple(spec["image_shape"]))
        for p in model.parameters():
            p.requires_grad_(False)
        meta = {k: spec[k] for k in ("dataset", "arch", "defense", "seed")} | {"image_shape": list(spec["image_shape"])}
        rows += _measure_target(Target(model.eval(), defense, meta), s, devices)
    return pd.DataFrame(rows, columns=COLUMNS)


def _latency_display(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Dataset": frame["dataset"],
            "Arch": frame["arch"],
            "Defense": frame["defense"],
            "Seed": frame["seed"],
            "Device": frame["device"] + " (" + frame["device_name"].astype(str) + ")",
            "Median (ms)": frame["latency_median_ms"].map("{:.3f}".format),
            "IQR (ms)": frame["latency_iqr_ms"].map("{:.3f}".format),
            "Std (ms)": frame["latency_std_ms"].map("{:.3f}".format),
            "Edge MFLOPs": (frame["edge_flops"] / 1e6).map("{:,.1f}".format),
            "Edge params": frame["edge_params"].map("{:,}".format),
            "z": frame["z_shape"],
        }
    )


def _latency_caption(frame: pd.DataFrame) -> str:
    setup = ""
    if len(frame):
        first = frame.iloc[0]
        threads = sorted({int(t) for t in frame["threads"].dropna()})
        setup = (
            f"Batch of {first['batch_size']} image(s), fp32, {first['warmup']} warm-up and "
            f"{first['repeats']} timed passes per row; "
            f"CPU threads {'/'.join(map(str, threads)) or 'n/a'}; torch {first['torch_version']}. "
        )
    return (
        "Single-sample latency of the deployed edge (edge layers plus the defense's perturbation of z), median over "
        f"the timed passes with interquartile range and standard deviation. {setup}FLOPs: {FLOP_CONVENTION}. "
        "Paper (section 6.3 (4), CIFAR-10 CNN): unprotected 1.204 / AE-based 2.812 / SiftFunnel 2.192 ms on CPU; "
        "3.9 / 4.3 / 6.9 ms on GPU (their hardware)."
    )


def latency_markdown(frame: pd.DataFrame) -> str:
    """The latency table for reading: medians with IQR and std, FLOPs in millions, parameters."""
    return (
        f"## Edge latency and cost\n\n{_latency_caption(frame)}\n\n{_latency_display(frame).to_markdown(index=False)}\n"
    )


def latency_html(frame: pd.DataFrame) -> str:
    from ciprivacy.reporting.table_files import HTML_PAGE

    body = _latency_display(frame).to_html(index=False, escape=True, border=0, classes="results")
    return HTML_PAGE.format(title="Edge latency and cost", caption=html.escape(_latency_caption(frame)), body=body)


def write_latency(frame: pd.DataFrame, csv_path: str, md_path: str, html_path: str | None = None) -> None:
    Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(csv_path, index=False)
    Path(md_path).parent.mkdir(parents=True, exist_ok=True)
    Path(md_path).write_text(latency_markdown(frame))
    if html_path is not None:
        Path(html_path).write_text(latency_html(frame))


def latency_report(model_paths: list[str], settings: dict[str, Any], csv_path: str, md_path: str) -> pd.DataFrame:
    """measure_latency, then the CSV (every column) and the Markdown table."""
    frame = measure_latency(model_paths, settings)
    write_latency(frame, csv_path, md_path)
    return frame


def built_latency_report(
    specs: list[dict[str, Any]], settings: dict[str, Any], csv_path: str, md_path: str, html_path: str | None = None
) -> pd.DataFrame:
    """measure_built_latency (no model files, no training), then the CSV, Markdown and HTML tables."""
    frame = measure_built_latency(specs, settings)
    write_latency(frame, csv_path, md_path, html_path)
    return frame
