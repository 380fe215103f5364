#!/usr/bin/env bash
# The GPU measurements of the step-time work in ONE run that fits one 10-minute call of a lent H200
# (about 8 minutes: every harness runs under its own `timeout`, capped by what is left of the run's
# deadline, so the summary is always printed; the steps most needed come first). Random weights everywhere (no hub on those machines).
#
#   bash perf/gpu_check.sh [OUT_DIR] [--tiny] [STEP...]   # OUT_DIR: default $OUT, else results/gpu
#
# Default steps, in this order (each STEP word runs one part; any mix):
#   check32    fp32 greedy tokens of every rollout variant against `generate` (Qwen2-0.5B shape)
#   rollout    tokens/s and fraction of the bandwidth floor per variant, Qwen2-0.5B shape, batch 256
#   methods=equal,maestro  full training steps at the Qwen3-8B shape (base/gpu.yaml: LoRA r16, gradient
#              checkpointing, num_minibatches auto, 32 x 256 new tokens) with the rollout engine METHODS_ENGINE:
#              s/step, phase breakdown, minibatches; if every run fails, once more with `generate`
#   qlora      QLoRA (4-bit NF4) s/step and peak memory at the Qwen2-0.5B shape, ~3 minutes for it alone
#   rollout8b  the rollout table at the Qwen3-8B shape, batch 32 (4 prompts x 8), 128 new tokens (needs
#              perf/gpu_rollout.py --shape; skipped with a note without it), with what is left
# Other words: check (the greedy check in bf16), fit (gpu_fit.py: the user's `fit` command, 0.5B shape).
# Environment: ROLLOUT_VARIANTS (the variants of every rollout step, one comma list), METHODS_ENGINE
# (model.rollout.engine of the training steps; GPU default continuous_batching, --tiny: base/gpu.yaml's), GPU_CHECK_SECONDS
# (the run's deadline, default 500), PYTHON (default python3).
# --tiny: the same plumbing on a CPU (tiny shapes, one step, a few tokens; ~70 s of CPU, mostly imports): a smoke
# run, no numbers.
#
# Before the call, on a machine with a network, from the repository root:
#   echo /.whl/ >> .git/info/exclude; echo /.maestro_cache/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
#     bitsandbytes==0.50.2 jsonargparse==4.53.0 docstring_parser==0.18.0 typeshed_client==2.15.0   # 43 MB
#   MAESTRO_LIT_CACHE=$PWD/.maestro_cache PYTHONPATH=src python -c \
#     "from maestro_lit.tiny import ensure_tiny_model as m; from maestro_lit.rewards.tiny_rm import ensure_tiny_reward_model as r; m(); r()"
# The GPU image lacks those four packages (bitsandbytes' wheel is tagged manylinux_2_24); building the tiny models
# (~5 MB, within the 64 MiB a call carries with the wheels) costs a fresh machine ~1 min. Then one
# call carrying [".whl", ".maestro_cache"] runs `bash perf/gpu_check.sh "$OUT"`: this script installs
# .whl/*.whl into /tmp/site and uses .maestro_cache when they are there; src/ comes first on PYTHONPATH.
#
# Each harness writes its log to OUT_DIR/<name>.txt; their tables are collected into OUT_DIR/summary.md,
# printed last.
set -u
cd "$(dirname "$0")/.."
start=$SECONDS
out="${OUT:-results/gpu}"
tiny=""
steps=""
for arg in "$@"; do
  case "$arg" in
    --tiny) tiny="--tiny" ;;
    check | check32 | rollout | rollout8b | qlora | fit | methods=*) steps="${steps:+$steps }$arg" ;;
    -*) echo "error: unknown option $arg (--tiny, or steps: check32 rollout rollout8b methods=a,b qlora check fit)" >&2 && exit 2 ;;
    *) out="$arg" ;;
  esac
done
steps="${steps:-check32 rollout methods=equal,maestro qlora rollout8b}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
py="${PYTHON:-python3}" # the GPU image has python3, not always python
deadline=$((start + ${GPU_CHECK_SECONDS:-500}))

if compgen -G ".whl/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
[ -d .maestro_cache ] && export MAESTRO_LIT_CACHE="$PWD/.maestro_cache"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" # this checkout's code, even where another is installed

# One variant list for every rollout step. A variant perf/gpu_rollout.py does not name is left out, with a note.
if [ -n "$tiny" ]; then default_variants=generate,continuous_batching,fast_dynamic; else default_variants=generate,continuous_batching,fast_compiled; fi
variants=""
for v in $(echo "${ROLLOUT_VARIANTS:-$default_variants}" | tr ',' ' '); do
  if grep -q "$v" perf/gpu_rollout.py; then variants="${variants:+$variants,}$v"; else echo "=== perf/gpu_rollout.py has no variant $v: left out"; fi
done
checked="$(echo "$variants" | tr ',' '\n' | grep -v '^generate$' | paste -sd, -)" # compared with generate
# Sizes: on a GPU the issue's shapes; --tiny the least that runs the same code (one step, a few tokens).
if [ -n "$tiny" ]; then
  rollout_args=(--tiny --batches 4 --new-tokens 4 --repeats 1)
  rollout8b_args=(--tiny --batches 4 --new-tokens 4 --repeats 1)
  methods_args=(--tiny --repeats 1 --steps 1 --warmup 0 --new-tokens 4 --prompt-tokens 16)
  qlora_args=(--tiny --contenders qlora --repeats 1 --steps 1 --warmup 0 --new-tokens 4)
  fit_args=(--tiny --steps 1)
  methods_engine="${METHODS_ENGINE:-}"
else
  rollout_args=(--batches 256 --repeats 1)
  rollout8b_args=(--shape qwen3-8b --batches 32 --new-tokens 128 --repeats 1)
  methods_args=(--steps 2 --warmup 1 --max-seconds 40)
  qlora_args=(--contenders qlora --repeats 1 --steps 3 --warmup 1)
  fit_args=(--steps 5)
  methods_engine="${METHODS_ENGINE-continuous_batching}"
fi

# harness NAME SECONDS MIN ARGS...: python perf/<NAME up to '-'>.py ARGS under a timeout of SECONDS, cut to what is
# left of the deadline (less 20 s for the summary); skipped when fewer than MIN seconds are left. Log: OUT_DIR/NAME.txt.
harness() {
  local name="$1" seconds="$2" least="$3"
  shift 3
  local left=$((deadline - SECONDS - 20))
  [ "$left" -lt "$seconds" ] && seconds=$left
  if [ "$seconds" -lt "$least" ]; then
    echo "=== $name skipped: ${left}s left of the run's deadline, it needs ${least}s" | tee "$out/$name.txt"
    return
  fi
  echo "=== $name (timeout ${seconds}s, $((SECONDS - start))s into the run): $py perf/${name%%-*}.py $*"
  timeout -k 10 "$seconds" "$py" "perf/${name%%-*}.py" "$@" 2>&1 | tee "$out/$name.txt"
  local code="${PIPESTATUS[0]}"
  [ "$code" = 0 ] || echo "=== $name exited with $code (124: timed out)" | tee -a "$out/$name.txt"
}

# table NAME: the harness's check and note lines, and its dated header line with everything after it (its table);
# without either, its last lines.
table() {
  echo "## $1"
  if grep -q '^20[0-9][0-9]-' "$out/$1.txt" 2>/dev/null; then
    grep -E '^(greedy|===)' "$out/$1.txt"
    sed -n '/^20[0-9][0-9]-/,$p' "$out/$1.txt"
  else
    grep -E '^(greedy|===)' "$out/$1.txt" 2>/dev/null || tail -n 8 "$out/$1.txt" 2>/dev/null
  fi
  echo
}

if [ -n "$tiny" ]; then
  echo "CPU smoke run (--tiny): tiny shapes, one step, no numbers to keep" | tee "$out/gpu.txt"
else
  (nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true) | tee "$out/gpu.txt"
  "$py" -c "import torch, transformers, peft, lightning; print('torch', torch.__version__, '| transformers', transformers.__version__, '| peft', peft.__version__, '| lightning', lightning.__version__)" 2>&1 | tee -a "$out/gpu.txt"
fi

# Expected on an H200: setup ~15 s, check32 ~40 s, rollout ~60 s, methods ~20 s + ~75 s per method (load 16 GB,
# a warm-up and a timed step), then qlora gets ~190 s (it had < 100 s before and did not finish), rollout8b the rest.
names=()
for step in $steps; do
  case "$step" in
    check) harness gpu_rollout-check 90 20 --check-only --variants "$variants" $tiny ;;
    check32) harness gpu_rollout-check32 90 20 --check-only --dtype float32 --variants "$variants" $tiny ;;
    rollout) harness gpu_rollout 120 30 --variants "$variants" "${rollout_args[@]}" ;;
    rollout8b)
      if "$py" perf/gpu_rollout.py --help 2>/dev/null | grep -q -- --shape; then
        harness gpu_rollout-8b 150 30 --variants "$variants" "${rollout8b_args[@]}"
      else
        echo "=== gpu_rollout-8b skipped: perf/gpu_rollout.py has no --shape option" | tee "$out/gpu_rollout-8b.txt"
      fi
      ;;
    qlora) harness qlora 200 60 "${qlora_args[@]}" ;;
    fit) harness gpu_fit 130 30 "${fit_args[@]}" ;;
    methods=*)
      list="${step#methods=}"
      count=$(echo "$list" | tr ',' ' ' | wc -w)
      step="gpu_methods-${list//,/_}"
      harness "$step" $((30 + count * 90)) 60 --methods ${list//,/ } "${methods_args[@]}" ${methods_engine:+--engine "$methods_engine"}
      if [ -n "$methods_engine" ] && [ "$methods_engine" != generate ] && ! grep -qE '^\| [a-z_]+ +\| [0-9]' "$out/$step.txt"; then
        names+=("$step") # no method ran with that engine: the same steps with the reference engine
        step="$step-generate"
        harness "$step" $((30 + count * 90)) 60 --methods ${list//,/ } "${methods_args[@]}" --engine generate
      fi
      ;;
  esac
  case "$step" in
    check | check32) names+=("gpu_rollout-$step") ;;
    rollout8b) names+=("gpu_rollout-8b") ;;
    rollout | fit) names+=("gpu_$step") ;;
    *) names+=("$step") ;;
  esac
done

{
  echo "# gpu_check.sh $steps: $(head -n 1 "$out/gpu.txt") · $((SECONDS - start)) s"
  echo
  for name in "${names[@]}"; do table "$name"; done
} >"$out/summary.md"
cat "$out/summary.md"
