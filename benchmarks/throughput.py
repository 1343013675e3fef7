"""Measure target-training throughput and the demo DAG's wall time on this machine.

    python benchmarks/throughput.py [--steps 5] [--resolution 64] [--skip-demo]

Prints a table and writes benchmarks/out/throughput.csv.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from ciprivacy.defenses import create_defense
from ciprivacy.precision import autocast
from ciprivacy.runtime import pick_device

ROOT = Path(__file__).resolve().parents[1]


def train_throughput(device: torch.device, resolution: int, batch: int, steps: int, amp: bool, channels_last: bool) -> float:
    """Images per second of full training steps (forward, backward, Adam) of the paper's CNN."""
    defense = create_defense("unprotected")
    model = defense.build("cnn", 10, (3, resolution, resolution), {}).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))
    x = torch.rand(batch, 3, resolution, resolution, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        with autocast(device, amp):
            loss = defense.loss(model, x, y, 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def demo_wall_time(cores: int) -> float:
    """Seconds for `snakemake --cores N --configfile presets/demo.yaml` in a fresh copy."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("Snakefile", "config.yaml"):
            shutil.copy(ROOT / name, Path(tmp) / name)
        for name in ("workflow", "presets", "envs"):
            shutil.copytree(ROOT / name, Path(tmp) / name)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", str(cores), "--configfile", "presets/demo.yaml", "--quiet"],
            cwd=tmp, check=True, capture_output=True,
        )
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cores", type=int, default=2, help="cores for the demo DAG")
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    device = pick_device(args.device)
    rows = []
    for amp, cl in [(False, False), (False, True), (True, True)]:
        ips = train_throughput(device, args.resolution, args.batch, args.steps, amp, cl)
        rows.append({
            "measure": "train_target_cnn", "device": device.type, "resolution": args.resolution, "batch": args.batch,
            "bf16_autocast": amp, "channels_last": cl, "value": round(ips, 2), "unit": "images/s",
        })
        print(f"target training, {device.type}, {args.resolution}px, batch {args.batch}, bf16={amp}, channels_last={cl}: {ips:.1f} images/s", flush=True)
    if not args.skip_demo:
        seconds = demo_wall_time(args.cores)
        rows.append({"measure": "demo_dag_wall_time", "device": "cpu", "value": round(seconds, 1), "unit": "s"})
        print(f"demo DAG on {args.cores} cores: {seconds:.1f} s", flush=True)
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out / "throughput.csv", index=False)
    print(f"wrote {out / 'throughput.csv'}")


if __name__ == "__main__":
    main()
