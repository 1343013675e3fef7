"""Where each stage's time goes: one measured call of ours under PyTorch's profiler, its operators
grouped by the work they do, and the fraction of the matmul peak the stage would reach if only
its convolutions and matrix products took time.

    python benchmarks/breakdown.py            # config.yaml's sizes, every stage
    python benchmarks/breakdown.py --stages target_training --top 15
    python benchmarks/breakdown.py --quick    # tiny sizes, seconds (what the test runs)

throughput.py says how far from the peak a stage is; this says why. ``matrix`` is the work the
matrix units do (convolutions, their gradients, matrix products); the rest (normalisation,
pooling, activations, the optimiser, copies and fills) is what fusing or compiling could remove.
``matrix TFLOP/s`` is the rate of the matrix work alone: above the matmul peak where the
convolution kernels beat torch.matmul. ``fraction if only matrix`` bounds what removing all the
rest could reach. Self time per operator: CPU time on a CPU, kernel time on a GPU. Writes
benchmarks/out/breakdown.csv (one row per stage and group) and breakdown.md (with each stage's
slowest operators and their shapes).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import pandas as pd
import stages
import torch
from machine import sync, timed
from throughput import add_size_arguments, apply_quick, machine_kind, peaks, setup_for, write_markdown
from torch.profiler import ProfilerActivity, profile

from ciprivacy.runtime import configure_job, pick_device

# The first group whose pattern an operator's name (after "aten::") matches; "other" if none.
GROUPS: dict[str, str] = {
    "matrix": r"conv|^(mm|addmm|bmm|baddbmm|addbmm|matmul|linear|_int_mm)$|^mkldnn_",
    "normalisation": r"batch_norm|layer_norm|group_norm|instance_norm",
    "pooling": r"pool|upsample",
    "activation": r"relu|clamp|threshold|tanh|sigmoid|gelu|silu|elu|hardtanh|softplus|mish",
    "optimiser": r"adam|sgd|_foreach|^Optimizer\.",
    "copies and fills": r"^(fill_|zero_|copy_|_to_copy|to|clone|contiguous|empty|empty_like|empty_strided|zeros|ones)$",
}
GROUP_ORDER = [*GROUPS, "other"]


def group_of(op: str) -> str:
    name = op.removeprefix("aten::")
    return next((g for g, pattern in GROUPS.items() if re.search(pattern, name)), "other")


def self_seconds(event, device: torch.device) -> float:
    us = event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total
    return us / 1e6


def profiled(run, device: torch.device):
    """The operators of one call of ``run`` (shapes recorded); ``run`` has run before (timed)."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as prof:
        run()
        sync(device)
    return [e for e in prof.key_averages(group_by_input_shape=True) if e.device_type.name == "CPU"]


def breakdown(name: str, setup: stages.Setup, peak: dict[str, float], top: int) -> tuple[list[dict], pd.DataFrame]:
    """Rows per group of ``name``'s operators, and its ``top`` slowest operators."""
    ours = stages.OURS[name](setup)
    seconds = timed(ours.run, setup.device)
    events = profiled(ours.run, setup.device)
    ops = pd.DataFrame(
        {
            "stage": name,
            "operator": e.key,
            "shapes": str([s for s in e.input_shapes if s])[:100],
            "calls": e.count,
            "seconds": self_seconds(e, setup.device),
        }
        for e in events
    )
    ops["group"] = ops["operator"].map(group_of)
    profiled_total = ops["seconds"].sum()
    call_flops = ours.flops * ours.images
    fraction = call_flops / seconds / peak[ours.precision]
    per_group = ops.groupby("group")["seconds"].sum().reindex(GROUP_ORDER, fill_value=0.0)
    matrix = per_group["matrix"]
    rows = [
        {
            "stage": name,
            "group": group,
            "seconds": group_seconds,
            "share": group_seconds / profiled_total,
            "precision": ours.precision,
            "images_per_s": ours.images / seconds,
            "fraction_of_peak": fraction,
            "matrix_tflops": call_flops / matrix / 1e12 if matrix else float("nan"),
            # The call shortened to its matrix work's share of the profiled time.
            "fraction_if_only_matrix": fraction * profiled_total / matrix if matrix else float("nan"),
        }
        for group, group_seconds in per_group.items()
    ]
    return rows, ops.nlargest(top, "seconds")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_size_arguments(p)
    p.add_argument("--top", type=int, default=10, help="slowest operators listed per stage")
    return apply_quick(p.parse_args())


def main() -> None:
    args = parse_args()
    device = pick_device(args.device)
    configure_job()  # as every job of the workflow starts: threads, allocator
    print(f"{machine_kind(device)}, {device}, {torch.get_num_threads()} threads", flush=True)
    peak = peaks(args, device)
    rows, tops = [], []
    with tempfile.TemporaryDirectory() as tmp:
        setup = setup_for(args, device, Path(tmp))
        for name in args.stages:
            print(f"profiling {name} ...", flush=True)
            stage_rows, stage_top = breakdown(name, setup, peak, args.top)
            rows += stage_rows
            tops.append(stage_top)
    df = pd.DataFrame(rows)
    df.insert(0, "machine", machine_kind(device))
    df["resolution"], df["width"], df["batch"] = args.resolution, args.width, args.batch
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "breakdown.csv", index=False)
    write_markdown(args.out / "breakdown.md", report(args, device, peak, df, tops))


def report(args, device, peak, df: pd.DataFrame, tops: list[pd.DataFrame]) -> list[str]:
    summary = df.drop_duplicates("stage").set_index("stage")
    shares = df.pivot(index="stage", columns="group", values="share")[GROUP_ORDER].loc[summary.index]
    table = pd.concat(
        [
            summary[["precision", "images_per_s", "fraction_of_peak", "matrix_tflops", "fraction_if_only_matrix"]],
            shares.add_prefix("share: "),
        ],
        axis=1,
    ).reset_index()
    md = [
        f"# Where the time goes, {device.type}, {torch.get_num_threads()} threads",
        f"Machine: {machine_kind(device)}. {args.resolution}x{args.resolution} images, CNN width {args.width}, "
        f"batch {args.batch}, {args.images} images per epoch; rMLE {args.rmle_iterations} iterations. Matmul peak "
        f"{peak['fp32'] / 1e12:.3f} TFLOP/s fp32, {peak['bf16'] / 1e12:.3f} bf16. Shares are of the profiled "
        "self time of one measured call.",
        "",
        table.to_markdown(index=False, floatfmt=".3g"),
    ]
    for top in tops:
        md += [
            "",
            f"## {top['stage'].iloc[0]}: slowest operators",
            "",
            top[["operator", "group", "shapes", "calls", "seconds"]].to_markdown(index=False, floatfmt=".4f"),
        ]
    return md


if __name__ == "__main__":
    sys.exit(main())
