"""Side-by-side speed of our training and attacks against plain reference loops, on this machine.

    python benchmarks/throughput.py            # sizes of config.yaml (64x64, width 128, batch 128)
    python benchmarks/throughput.py --quick    # tiny sizes, seconds (what the test runs)
    python benchmarks/throughput.py --compile  # also ours with compile: true (ours+compile rows)
    python benchmarks/throughput.py --demo     # also the demo DAG's wall time
    python benchmarks/throughput.py --demo --amp-compare   # ... twice, bf16 and fp32, tables compared
    python benchmarks/throughput.py --demo-only --amp-compare   # only the demo runs

For target training, inverse-network training, rMLE and MINE it prints images per second of
ours and of the reference loop (reference.py), their ratio, and the fraction of the measured
matmul peak reached, headed by the CPU kind (AMX, AVX-512 BF16 or neither) or the GPU; then the
projected cost of the full config. Writes
benchmarks/out/throughput.csv, projection.csv and throughput.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import demo
import pandas as pd
import projection
import stages
import torch
import yaml
from images import smooth_images, write_image_folder
from machine import cpu_kind, matmul_peak

from ciprivacy.precision import amp_active
from ciprivacy.runtime import configure_job, pick_device

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"


def config_sizes() -> tuple[int, int, int]:
    """Resolution, CNN width and batch size of the full run (config.yaml)."""
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    dataset = cfg["datasets"]["cifar10"]  # the paper's main dataset (Tables 2, 3, 5, 6)
    return dataset["resolution"], cfg["archs"]["cnn"]["model"]["width"], cfg["target_training"]["batch_size"]


def machine_kind(device: torch.device) -> str:
    """The GPU's name, or the CPU with its matrix units (AMX or not): what a fraction of peak
    is a fraction of."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_kind()


def add_size_arguments(p: argparse.ArgumentParser) -> None:
    """The options that say what is measured, where and at which sizes (shared with breakdown.py)."""
    resolution, width, batch = config_sizes()
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    p.add_argument("--device", default="auto")
    p.add_argument("--resolution", type=int, default=resolution)
    p.add_argument("--width", type=int, default=width)
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--images", type=int, default=512, help="images per measured epoch")
    p.add_argument("--rmle-iterations", type=int, default=20)
    p.add_argument("--rmle-batch", type=int, default=64, help="targets ours reconstructs at once")
    p.add_argument("--rmle-reference-images", type=int, default=4, help="images the per-image loop reconstructs")
    p.add_argument("--matmul-size", type=int, default=None, help="side of the peak matmul (default 2048 CPU, 8192 GPU)")
    p.add_argument("--stages", nargs="+", default=list(stages.STAGES), choices=list(stages.STAGES))
    p.add_argument("--no-amp", action="store_true", help="ours in fp32 too")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--out", type=Path, default=OUT)


def apply_quick(args: argparse.Namespace) -> argparse.Namespace:
    if args.quick:
        args.resolution, args.width, args.batch, args.images = 16, 8, 16, 32
        args.rmle_iterations, args.rmle_batch, args.rmle_reference_images = 2, 4, 2
        args.matmul_size = args.matmul_size or 128
    return args


def peaks(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """Measured matmul FLOP/s in fp32 and, where ours runs in it, bf16 (else fp32's)."""
    n_mm = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    peak = {"fp32": matmul_peak(device, torch.float32, n_mm)}
    peak["bf16"] = matmul_peak(device, torch.bfloat16, n_mm) if amp_active(device, True) else peak["fp32"]
    return peak


def setup_for(args: argparse.Namespace, device: torch.device, folder: Path) -> stages.Setup:
    """The smooth test images (also written to ``folder`` as an ImageFolder) at ``args``' sizes."""
    images, labels = smooth_images(args.images, args.resolution, classes=10)
    return stages.Setup(
        device=device,
        images=images.to(device),
        labels=labels.to(device),
        folder=str(write_image_folder(images, labels, folder)),
        width=args.width,
        batch=args.batch,
        amp=not args.no_amp,
        channels_last=not args.no_channels_last,
        rmle_iterations=args.rmle_iterations,
        rmle_batch=args.rmle_batch,
        rmle_reference_images=args.rmle_reference_images,
        compile=getattr(args, "compile", False),
    )


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_size_arguments(p)
    p.add_argument(
        "--compile", action="store_true", help="also ours compiled (compile: true): ours+compile rows, compile seconds"
    )
    p.add_argument(
        "--malloc",
        choices=["retain", "system"],
        default=os.environ.get("CIPRIVACY_MALLOC", "retain"),
        help="retain: freed memory stays in the process, as in the workflow's jobs "
        "(ciprivacy.runtime.retain_freed_memory); system: glibc's default. Ours and "
        "the reference run in one process, so both get the same (default: "
        "$CIPRIVACY_MALLOC, else retain)",
    )
    p.add_argument("--demo", action="store_true", help="also time the demo DAG")
    p.add_argument("--demo-only", action="store_true", help="only time the demo DAG (writes demo.md)")
    p.add_argument("--amp-compare", action="store_true", help="with --demo: run it with amp on and off, compare tables")
    p.add_argument("--cores", type=int, default=2, help="cores for the demo DAG")
    return apply_quick(p.parse_args())


def measure(args: argparse.Namespace, device: torch.device) -> tuple[pd.DataFrame, dict[str, float]]:
    peak = peaks(args, device)
    with tempfile.TemporaryDirectory() as tmp:
        setup = setup_for(args, device, Path(tmp))
        rows = []
        for name in args.stages:
            print(f"measuring {name} ...", flush=True)
            rows += stages.STAGES[name](setup)
    df = pd.DataFrame(rows)
    df.insert(0, "device", device.type)
    df.insert(1, "machine", machine_kind(device))
    df.insert(1, "malloc", args.malloc)
    df["resolution"], df["width"], df["batch"] = args.resolution, args.width, args.batch
    df["images_per_s"] = df["images"] / df["seconds"]
    ref = df[df.implementation == "reference"].set_index("stage")["images_per_s"]
    df["speedup_vs_reference"] = df["images_per_s"] / df["stage"].map(ref)
    df["achieved_tflops"] = df["gflop_per_image"] * df["images_per_s"] / 1e3
    df["peak_tflops"] = df["precision"].map(peak) / 1e12
    df["fraction_of_peak"] = df["achieved_tflops"] / df["peak_tflops"]
    # The most an implementation doing this row's arithmetic in this precision could gain over the
    # reference on this machine: images per second at the matmul peak over the reference's. Where
    # both do the same arithmetic, that is the peak over what the reference already achieves.
    ref_ips = df[df.implementation == "reference"].set_index("stage")["images_per_s"]
    df["speedup_ceiling"] = df["peak_tflops"] * 1e3 / df["gflop_per_image"] / df["stage"].map(ref_ips)
    return df, peak


def main() -> None:
    args = parse_args()
    device = pick_device(args.device)
    os.environ["CIPRIVACY_MALLOC"] = args.malloc
    configure_job()  # as every job of the workflow starts: threads, allocator
    load = os.getloadavg()
    print(
        f"{machine_kind(device)}, {device}, {torch.get_num_threads()} threads, "
        f"malloc {args.malloc}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        flush=True,
    )
    if args.demo_only:
        return demo_report(args, args.out / "demo.md", [])
    df, peak = measure(args, device)
    ours = df[df.implementation == "ours"].set_index("stage")["images_per_s"].to_dict()
    proj = pd.DataFrame(projection.project(ROOT / "config.yaml", ours, args.rmle_iterations))
    proj["measured_at_config_sizes"] = (args.resolution, args.width, args.batch) == config_sizes()
    unit = "GPU-hours" if device.type == "cuda" else "CPU-hours (this machine)"
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "throughput.csv", index=False)
    proj.to_csv(args.out / "projection.csv", index=False)
    cols = [
        "stage",
        "implementation",
        "precision",
        "channels_last",
        "images_per_s",
        "speedup_vs_reference",
        "speedup_ceiling",
        "gflop_per_image",
        "fraction_of_peak",
        *(["compile_seconds"] if args.compile else []),
    ]
    md = [
        f"# Throughput on {device.type}, {torch.get_num_threads()} threads, malloc {args.malloc}, "
        f"load average {load[0]:.2f}",
        f"Machine: {machine_kind(device)}.",
        f"{args.resolution}x{args.resolution} images, CNN width {args.width}, batch {args.batch}, {args.images} images "
        f"per epoch; rMLE {args.rmle_iterations} iterations. Matmul peak: "
        f"{peak['fp32'] / 1e12:.3f} TFLOP/s fp32, {peak['bf16'] / 1e12:.3f} TFLOP/s bf16. speedup_ceiling: "
        "images per second at that peak in the row's precision and arithmetic over the reference's, "
        "the most an implementation doing that arithmetic could gain here.",
        "",
        df[cols].to_markdown(index=False, floatfmt=".3g"),
        "",
        f"## Projected cost of config.yaml ({unit}, lower bound)",
        "",
        *(
            []
            if proj["measured_at_config_sizes"].all()
            else ["Measured at other sizes than config.yaml's: this projection does not describe the full run.", ""]
        ),
        proj.to_markdown(index=False, floatfmt=".3g"),
    ]
    print(f"wrote {args.out / 'throughput.csv'}, {args.out / 'projection.csv'}")
    if args.demo:
        demo_report(args, args.out / "throughput.md", md)
    else:
        write_markdown(args.out / "throughput.md", md)


def demo_report(args: argparse.Namespace, path: Path, md: list[str]) -> None:
    """Time the demo DAG (amp on, and off with --amp-compare) and add the tables to ``md``."""
    args.out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    runs = (
        demo.compare(args.cores, args.out) if args.amp_compare else {"amp on": demo.run(args.cores, args.out, amp=True)}
    )
    md += [
        "",
        f"## Demo DAG on {args.cores} cores (load average {load:.2f} at the start)",
        "",
        demo.wall_time_table(runs).to_markdown(index=False, floatfmt=".1f"),
    ]
    if args.amp_compare:
        md += ["", "### Summary, amp on vs off", "", demo.summary_diff(runs).to_markdown(index=False, floatfmt=".4g")]
    write_markdown(path, md)


def write_markdown(path: Path, md: list[str]) -> None:
    text = "\n".join(md) + "\n"
    path.write_text(text)
    print(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
