#!/usr/bin/env bash
# Every GPU measurement the performance issue asks for, in one run on a lent H100/H200:
# the rollout table (generate vs the fast decode loop, greedy check first), QLoRA vs bf16 LoRA, and
# 20 steps of each paper method on a Qwen3-8B-shaped model with random weights (bf16, LoRA r16,
# gradient checkpointing): s/step, peak memory, rollout tokens/s (~5-8 min per method on an H100,
# an estimate: run `python perf/gpu_methods.py --methods maestro` alone first where time is short).
#
#   bash perf/gpu_check.sh [OUT_DIR] [--tiny]   # default OUT_DIR: $OUT, else results/gpu
#
# --tiny runs the same plumbing on a CPU with the small models (a smoke run of this script).
#
# Before carrying the repository to the GPU machine (no internet there):
#   pip download --no-deps -d wheels/ bitsandbytes     # the GPU image has no bitsandbytes
# Each harness prints its table last; the tables are copied to OUT_DIR/summary.md.
set -u
cd "$(dirname "$0")/.."
out="${1:-${OUT:-results/gpu}}"
tiny="${2:-}"
mkdir -p "$out"

if ! python -c "import bitsandbytes" 2>/dev/null; then
  pip install -q --no-deps wheels/bitsandbytes-*.whl || echo "no bitsandbytes wheel in wheels/: the qlora row will say why it failed"
fi
pip install -q --no-deps -e . || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$out/gpu.txt"

timeout 420 python perf/gpu_rollout.py --check --repeats 2 $tiny 2>&1 | tee "$out/gpu_rollout.txt"
timeout 240 python perf/qlora.py --repeats 2 --steps 6 --warmup 2 $tiny 2>&1 | tee "$out/qlora.txt"
timeout 3600 python perf/gpu_methods.py --methods maestro maestro_joint equal random nover em_grpo --steps 20 --warmup 2 $tiny 2>&1 | tee "$out/gpu_methods.txt"

{
  echo "## gpu_rollout.py --check"; sed -n '/^20[0-9][0-9]-/,$p' "$out/gpu_rollout.txt"
  echo; echo "## qlora.py"; sed -n '/^20[0-9][0-9]-/,$p' "$out/qlora.txt"
  echo; echo "## gpu_methods.py"; sed -n '/^20[0-9][0-9]-/,$p' "$out/gpu_methods.txt"
} | tee "$out/summary.md"
