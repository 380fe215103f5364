"""One real ``python -m maestro_lit fit`` of the paper composition, on a random-weight model: proof that the user-facing command runs.

    python perf/gpu_fit.py                       # GPU: Qwen2.5-0.5B-Instruct-shaped, random bf16 weights, 5 steps
    python perf/gpu_fit.py --tiny                # CPU smoke run: a 2-layer stand-in of the same family
    python perf/gpu_fit.py --model qwen3-8b --steps 3

The command is the README's paper composition ``base/gpu.yaml`` + ``models/<--model>.yaml`` +
``rewards/paper.yaml`` + ``methods/maestro.yaml`` run as a child process, exactly as a user types it,
with only these substitutions: the weights (a local folder holding the model file's shape from
``perf/memory_estimate.py`` with random weights and the embedded tiny model's tokenizer: no hub on
the lent machines), ``trainer.max_steps``, ``model.sampling.max_new_tokens`` (``--new-tokens``) and
the run folder (a temporary one). The reward model stays the paper file's offline stand-in
(``maestro-lit/tiny-rm``). ``--tiny`` also sets the CPU accelerator and skips the sanity validation.
Printed last: the exact command, its exit code and wall time, the checkpoints it wrote and the
last value of a few logged metrics (read back from its TensorBoard events).
"""  # noqa: E501 - the first line is the --help description (``__doc__.splitlines()[0]``)

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchutil as bu
import torch

sys.path.insert(0, str(Path(__file__).parent))
from memory_estimate import MODELS, hf_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHRINK = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=64,
)
SHOWN = (
    "train/scalar_reward",
    "train/completion_length",
    "train/kl",
    "conductor/entropy",
    "conductor/updates",
    "time/rollout",
    "time/inner",
    "train/num_minibatches",
)


def save_random_model(model: str, out: Path, tiny: bool) -> None:
    """``model``'s shape (or its 2-layer shrink) with random bf16 weights, plus the embedded tokenizer."""
    from transformers import AutoModelForCausalLM

    from maestro_lit.policy.model import load_tokenizer
    from maestro_lit.tiny import ensure_tiny_model

    tokenizer = load_tokenizer(str(ensure_tiny_model()))
    overrides = dict(SHRINK, vocab_size=len(tokenizer)) if tiny else {}
    config = hf_config(
        MODELS[model],
        **overrides,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() and not tiny else "cpu"):
        causal_lm = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    causal_lm.generation_config.pad_token_id = tokenizer.pad_token_id
    causal_lm.generation_config.eos_token_id = tokenizer.eos_token_id
    causal_lm.save_pretrained(out)
    tokenizer.save_pretrained(out)


def fit_command(model: str, model_dir: Path, run_dir: Path, steps: int, new_tokens: int, tiny: bool) -> list[str]:
    parts = ["base/gpu", f"models/{model}", "rewards/paper", "methods/maestro"]
    command = [
        sys.executable,
        "-m",
        "maestro_lit",
        "fit",
        *[a for p in parts for a in ("--config", f"configs/{p}.yaml")],
    ]
    command += [
        f"--model.policy.name_or_path={model_dir}",
        f"--trainer.max_steps={steps}",
        f"--model.sampling.max_new_tokens={new_tokens}",
    ]
    command += [
        f"--trainer.default_root_dir={run_dir}",
        f"--trainer.logger.init_args.save_dir={run_dir}",
        f"--checkpoint.dirpath={run_dir}/ckpt",
    ]
    if tiny:
        command += ["--trainer.accelerator=cpu", "--trainer.num_sanity_val_steps=0", "--torch_threads=1"]
    return command


def last_scalars(run_dir: Path) -> dict[str, tuple[int, float]]:
    """(step, value) of the last point of every scalar the run logged to TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, tuple[int, float]] = {}
    for events in run_dir.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            last = acc.Scalars(tag)[-1]
            scalars[tag] = (last.step, last.value)
    return scalars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="2-layer stand-in on CPU (smoke run)")
    parser.add_argument("--model", default="qwen2.5-0.5b-instruct", choices=sorted(MODELS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=None, help="default 128 (GPU) or 8 (--tiny)")
    args = parser.parse_args()
    new_tokens = args.new_tokens or (8 if args.tiny else 128)

    work = Path(tempfile.mkdtemp(prefix="maestro_gpu_fit_"))
    try:
        save_random_model(args.model, work / "model", args.tiny)
        command = fit_command(args.model, work / "model", work / "run", args.steps, new_tokens, args.tiny)
        print("$ " + " ".join(command[1:]).replace(str(work), "$WORK"), flush=True)
        start = time.perf_counter()
        code = subprocess.run(command, cwd=ROOT).returncode
        wall = time.perf_counter() - start
        checkpoints = (
            sorted(p.name for p in (work / "run" / "ckpt").glob("*.ckpt")) if (work / "run" / "ckpt").is_dir() else []
        )
        scalars = last_scalars(work / "run") if (work / "run").is_dir() else {}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    device = "CPU" if args.tiny or not torch.cuda.is_available() else torch.cuda.get_device_name(0)
    shape = (
        f"2-layer {MODELS[args.model].family} stand-in" if args.tiny else f"{args.model}-shaped, random bf16 weights"
    )
    print(
        f"\n{bu.today()} · {device}, torch {torch.__version__} · fit: base/gpu + models/{args.model} "
        f"+ rewards/paper + methods/maestro · {shape} · {args.steps} steps x {new_tokens} new tokens"
    )
    rows = [
        ["exit code", code],
        ["wall s (process start to exit)", f"{wall:.1f}"],
        ["checkpoints", ", ".join(checkpoints) or "none"],
    ]
    rows += [
        [f"last {tag} (step {step})", f"{value:.4g}"] for tag, (step, value) in sorted(scalars.items()) if tag in SHOWN
    ]
    rows += [["scalar tags logged", len(scalars)]]
    print(bu.table(["what", "value"], rows))
    sys.exit(code)


if __name__ == "__main__":
    main()
