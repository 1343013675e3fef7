#!/usr/bin/env bash
# The GPU part of the speed benchmark as one prepared run, for a lent device machine (whose
# python3 already has torch, pandas, scikit-image, tabulate and tqdm: nothing is installed):
#   1. throughput.py on the GPU: ours vs the reference loops, fraction of the measured bf16 peak,
#      and the GPU-hours projection of config.yaml;
#   2. breakdown.py on the GPU: each stage's kernel time by group (convolutions, normalisation,
#      pooling, ...) and its slowest operators;
#   3. paper_scale.py: one paper-scale CIFAR-10 CNN training (unprotected) and one black-box
#      inverse network; 10 epochs of each, projected to config.yaml's 100, unless PAPER_SCALE_ARGS
#      says otherwise (a device lease is minutes: measure the full 100 only where time allows).
# Results and logs go to $OUT (default benchmarks/out/device); paper_scale.csv is rewritten after
# each of its two measurements, so a run stopped at its time limit keeps the first.
#
#   bash benchmarks/device_check.sh                                    # on the GPU machine
#   PAPER_SCALE_ARGS="--epochs 100 --attack-epochs 100" bash benchmarks/device_check.sh   # in full
#   DEVICE=cpu THROUGHPUT_ARGS=--quick BREAKDOWN_ARGS=--quick PAPER_SCALE_ARGS=--quick bash benchmarks/device_check.sh  # dry run here
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/out/device}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
"$PY" -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')" 2>&1 | tee "$OUT/machine.log"
# shellcheck disable=SC2086  # the *_ARGS are word lists on purpose
"$PY" benchmarks/throughput.py --device "$DEVICE" ${THROUGHPUT_ARGS:-} --out "$OUT" 2>&1 | tee "$OUT/throughput.log"
# shellcheck disable=SC2086
"$PY" benchmarks/breakdown.py --device "$DEVICE" ${BREAKDOWN_ARGS:-} --out "$OUT" 2>&1 | tee "$OUT/breakdown.log"
# shellcheck disable=SC2086
"$PY" benchmarks/paper_scale.py --device "$DEVICE" ${PAPER_SCALE_ARGS:---epochs 10 --attack-epochs 10} --out "$OUT" 2>&1 | tee "$OUT/paper_scale.log"
