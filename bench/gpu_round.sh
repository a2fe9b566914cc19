#!/usr/bin/env bash
# The prepared GPU round (issue 14): every GPU figure docs/benchmarks.md shows, in one call of the device tool.
#
#   bench/gpu_round.sh OUT        # from the repository root, on the GPU machine, in ~8 minutes (measured before the batch
#                                   256/1024 training rows were added; those are not yet timed)
#
# Writes into OUT: render-cuda-256.json and render-cuda-1024.json (`svgan-bench render`: correctness against the
# CPU fp32 reference on the conformance fixture's weights, ms/frame per fast-path variant at batch 1/4/16/32,
# end-to-end fps into MP4 and first-frame latency), train-cuda.json, train-cuda-paper.json, train-cuda-bf16.json,
# train-cuda-graph.json, train-cuda-b256.json and train-cuda-b1024.json (`svgan-bench train --device cuda [--paper]
# [--critic-dtype bfloat16] [--cuda-graph] [--batch-size N]`), gpu.txt (nvidia-smi) and logs.tgz.
# Copy the JSON files into docs/benchmarks/ and run `make bench-report`.
#
# The machine has no svgan install and no PyAV: call it through the device tool with `.whl` (PyAV's cp312 wheel,
# see README "Benchmarks") in `carry`:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
#   bash bench/gpu_round.sh $OUT
#
# DEVICE=cpu SMOKE=1 bench/gpu_round.sh OUT checks the script's plumbing on a machine without a GPU (seconds).
set -euo pipefail
out=${1:?usage: bench/gpu_round.sh OUT}
device=${DEVICE:-cuda}
work=${WORK:-/tmp/gpu-round}
logs=$work/logs
mkdir -p "$out" "$logs"
trap 'tar -czf "$out/logs.tgz" -C "$work" logs' EXIT
# Runs a step with its output in logs/NAME.log; on failure shows the log's end and goes on with the next step.
step() { local name=$1; shift; echo "== $name $(date +%T)"; "$@" > "$logs/$name.log" 2>&1 || tail -c 2000 "$logs/$name.log"; }

source bench/package_layout.sh
svgan_package_layout "$work"
bench() { python3 -P -c 'from svgan.bench.cli import main; main()' "$@"; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > "$out/gpu.txt" || true
python3 -c 'import torch, av; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "av", av.__version__)'

if [[ -n ${SMOKE:-} ]]; then
    step smoke bench render --resolution 256 --device "$device" --batches 1 --variants eager-fp32,fast-fp32 \
        --repeats 1 --stream-frames 2 --stream-batch 2 --json "$out/render-$device-smoke.json"
    ls -la "$out"
    exit 0
fi
# Smallest first: a broken set-up shows within a minute, before the long steps.
step render-256 bench render --resolution 256 --device "$device" --batches 1,16 --repeats 5 --stream-frames 100 \
    --json "$out/render-$device-256.json"
step render-1024 bench render --resolution 1024 --device "$device" --json "$out/render-$device-1024.json"
step train bench train --device "$device" --json "$out/train-$device.json"
step train-paper bench train --device "$device" --paper --json "$out/train-$device-paper.json"
step train-bf16 bench train --device "$device" --critic-dtype bfloat16 --json "$out/train-$device-bf16.json"
# Issue 17: each iteration replayed as one CUDA graph, and its losses against eager iterations from the same seed,
# with constant and with falling (--lr-decay) learning rates
# (never run yet: a failure here is the first news of how capture fares)
step train-graph bench train --device "$device" --cuda-graph --json "$out/train-$device-graph.json"
# Issue 17: larger batches, where a GPU pays less per window than the CPU does (the batch study's other half, which
# trained the paper's way)
step train-b256 bench train --device "$device" --paper --batch-size 256 --json "$out/train-$device-b256.json"
step train-b1024 bench train --device "$device" --paper --batch-size 1024 --json "$out/train-$device-b1024.json"
ls -la "$out"
