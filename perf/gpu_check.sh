#!/usr/bin/env bash
# Every GPU measurement the performance issue asks for, split so that each part fits one call of a
# lent machine (<= 10 min): the rollout table (generate vs the fast decode loop, greedy check first),
# QLoRA vs bf16 LoRA, a few steps of each paper method on a Qwen3-8B-shaped model with random weights
# (bf16, LoRA r16, gradient checkpointing: s/step, peak memory, rollout tokens/s), and one real
# `python -m maestro_lit fit` of the paper composition on a random Qwen2.5-0.5B-shaped model.
#
#   bash perf/gpu_check.sh [OUT_DIR] [--tiny] [1|2|all|STEP...]   # default OUT_DIR: $OUT, else results/gpu; part 1
#
#   part 1: gpu_rollout.py --check, qlora.py, gpu_methods.py maestro equal
#   part 2: gpu_methods.py maestro_joint random nover em_grpo, then gpu_fit.py (5 steps)
#   STEPs, any mix: rollout | check | check32 (greedy check only, bf16 | float32) | qlora | fit | methods=a,b,...
#   On an H200 (2026-11-26): rollout ~2.5 min, qlora ~1.5 min, methods ~30 s + ~1.5 min per method
#   (Qwen3-8B shape: one warm-up and one or two timed 32 s steps), fit ~1 min. A fresh machine first
#   builds the embedded tiny model and reward model (~1 min): carry a built MAESTRO_LIT_CACHE folder.
#
# Each harness runs under its own `timeout` (a hang cannot eat the whole call) and writes its log to
# OUT_DIR/<harness>.txt; the tables are collected into OUT_DIR/summary.md and printed last.
# --tiny runs the same plumbing on a CPU with small models (a smoke run of this script, ~5 min per part).
#
# The GPU image lacks bitsandbytes and jsonargparse (+ docstring_parser, typeshed_client): carry their
# wheels and install them before this script (perf/README.md, "GPU numbers", has the command). Without
# an installed maestro_lit, src/ is put on PYTHONPATH.
set -u
cd "$(dirname "$0")/.."
out="${OUT:-results/gpu}"
tiny=""
part=""
for arg in "$@"; do
  case "$arg" in
    --tiny) tiny="--tiny" ;;
    1 | 2 | all | rollout | check | check32 | qlora | fit | methods=*) part="${part:+$part }$arg" ;;
    *) out="$arg" ;;
  esac
done
part="${part:-1}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py="${PYTHON:-python3}"  # the GPU image has python3, not always python
"$py" -c "import maestro_lit" 2>/dev/null || export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
# Step counts: on a GPU the first step holds the warm-up (cuBLAS handles, allocator growth), so one
# warm-up step; --max-seconds then stops each method once its budget is spent (the table says how many
# steps were timed). Compiled rollout variants cost a compile per batch size (~20 s on the CPU here).
if [ -n "$tiny" ]; then
  methods_steps=(--steps 3 --warmup 1)
  variants=generate,fast_dynamic,fast_static
  check_variants=fast_dynamic,fast_static
else
  methods_steps=(--steps 8 --warmup 1)
  variants=generate,fast_dynamic,fast_static,fast_compiled
  check_variants=fast_dynamic,fast_compiled,fast_compiled_nograph
fi

# harness NAME SECONDS ARGS...: run python perf/NAME.py ARGS under a timeout, log to OUT_DIR/NAME.txt.
harness() {
  local name="$1" seconds="$2"
  shift 2
  echo "=== $name (timeout ${seconds}s): $py perf/${name%%-*}.py $*"
  timeout -k 10 "$seconds" "$py" "perf/${name%%-*}.py" "$@" 2>&1 | tee "$out/$name.txt"
  local code="${PIPESTATUS[0]}"
  [ "$code" = 0 ] || echo "=== $name exited with $code (124: timed out)" | tee -a "$out/$name.txt"
}

# table NAME: the harness's dated header line and everything after it (its table), else its last lines.
table() {
  echo "## $1"
  if grep -q '^20[0-9][0-9]-' "$out/$1.txt" 2>/dev/null; then sed -n '/^20[0-9][0-9]-/,$p' "$out/$1.txt"; else tail -n 8 "$out/$1.txt" 2>/dev/null; fi
  echo
}

(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true) | tee "$out/gpu.txt"
"$py" -c "import torch, transformers, peft, lightning; print('torch', torch.__version__, '| transformers', transformers.__version__, '| peft', peft.__version__, '| lightning', lightning.__version__)" 2>&1 | tee -a "$out/gpu.txt"

# One step per word: rollout | check | check32 | qlora | fit | methods=<m1,m2,...>; the parts are presets.
case "$part" in
  1) steps="rollout qlora methods=maestro,equal" ;;
  2) steps="methods=maestro_joint,random,nover,em_grpo fit" ;;
  all) steps="rollout qlora methods=maestro,equal methods=maestro_joint,random,nover,em_grpo fit check32" ;;
  *) steps="$part" ;;
esac
names=()
for step in $steps; do
  case "$step" in
    rollout) harness gpu_rollout 200 --check --repeats 1 --variants "$variants" $tiny ;;
    check) harness gpu_rollout-check 90 --check-only --variants "$check_variants" $tiny ;;
    check32) harness gpu_rollout-check32 90 --check-only --dtype float32 --variants "$check_variants" $tiny ;;
    qlora) harness qlora 150 --repeats 1 --steps 4 --warmup 1 $tiny ;;
    fit) harness gpu_fit 130 --steps 5 $tiny ;;
    methods=*)
      list="${step#methods=}"
      count=$(echo "$list" | tr ',' ' ' | wc -w)
      # ~20 s to build the 8B checkpoint, then per method ~130 s: start, load 16 GB, a warm-up and a timed ~35 s step
      harness "gpu_methods-${list//,/_}" $((20 + count * 135)) --methods ${list//,/ } "${methods_steps[@]}" --max-seconds 40 $tiny
      step="gpu_methods-${list//,/_}"
      ;;
    *) echo "unknown step $step (rollout, check, check32, qlora, fit, methods=a,b)" && exit 2 ;;
  esac
  case "$step" in
    rollout | fit) names+=("gpu_$step") ;;
    check | check32) names+=("gpu_rollout-$step") ;;
    *) names+=("$step") ;;
  esac
done

{
  echo "# gpu_check.sh $part: $(head -n 1 "$out/gpu.txt")"
  echo
  for name in "${names[@]}"; do table "$name"; done
} >"$out/summary.md"
cat "$out/summary.md"
