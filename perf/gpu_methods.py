"""N steps of each method file on a Qwen3-8B-shaped model with random weights: s/step, peak memory, rollout tokens/s.

    python perf/gpu_methods.py                   # GPU: Qwen3-8B shape, bf16, LoRA r16, gradient checkpointing, 20 steps
    python perf/gpu_methods.py --tiny            # CPU smoke run: the same plumbing on a 2-layer Qwen3 shape, 3 steps
    python perf/gpu_methods.py --methods maestro nover

The model is built from ``Qwen3Config`` with the public Qwen3-8B numbers (``perf/memory_estimate.py``;
no download), random bf16 weights, saved beside the embedded tiny model's tokenizer (ids it does
not know decode to nothing; EOS is switched off, so every completion is ``--new-tokens`` long).
Each method runs in its own child (``maestro_run.py``) on the composition
``base/gpu.yaml`` + ``models/qwen3-8b.yaml`` + ``rewards/<--rewards>.yaml`` + ``methods/<m>.yaml``
(shipped prompts; prompts × G from ``base/gpu.yaml``: 4 × 8), only the weights, the token budget
and, with ``--tiny``, the accelerator and prompts per step substituted; minibatches are ``base/gpu.yaml``'s
``auto`` (the table gives the count chosen; on a CPU one). ``single`` and ``trusted`` need a component
name: ``--component`` (default ``pref``) is given to both. Rollout tokens/s = completion tokens
of a step / its rollout seconds; the phase columns are medians over the timed steps.
A method that fails is reported with its last error line instead of stopping the others.
``--engine`` sets ``model.rollout.engine`` for every run (the table's header names it).
``--max-seconds`` bounds each method's training time (a lent machine's per-call limit); the table
says how many steps were timed.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import benchutil as bu
import torch

sys.path.insert(0, str(Path(__file__).parent))
from memory_estimate import MODELS, hf_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=64,
)
# name a component
EXTRA = {"single": "model.scalarizer.init_args.component", "trusted": "model.scalarizer.init_args.trusted_component"}


def save_random_qwen3_8b(out: Path, tiny: bool) -> None:
    """Qwen3-8B-shaped (or its 2-layer --tiny shrink) causal LM, random bf16 weights, plus the embedded tokenizer."""
    from transformers import AutoModelForCausalLM

    from maestro_lit.policy.model import load_tokenizer
    from maestro_lit.tiny import ensure_tiny_model

    tokenizer = load_tokenizer(str(ensure_tiny_model()))
    overrides = dict(TINY, vocab_size=len(tokenizer)) if tiny else {}
    config = hf_config(
        MODELS["qwen3-8b"], **overrides, eos_token_id=None, bos_token_id=None, pad_token_id=tokenizer.pad_token_id
    )
    device = "cuda" if torch.cuda.is_available() and not tiny else "cpu"
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.generation_config.eos_token_id = None  # random weights: decode every token
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def method_runs(model_dir: Path, args) -> dict[str, list[str]]:
    parts = ["base/gpu", "models/qwen3-8b", f"rewards/{args.rewards}"]
    sets = [
        f"model.policy.name_or_path={model_dir}",
        f"model.sampling.max_new_tokens={args.new_tokens}",
        f"model.sampling.max_prompt_tokens={args.prompt_tokens}",
    ]
    if args.tiny:
        sets += [
            "trainer.accelerator=cpu",
            "trainer.devices=1",
            "data.batch_size=2",
        ]
    if getattr(args, "engine", None):
        sets.append(f"model.rollout.engine={args.engine}")
    runs = {}
    for method in args.methods:
        argv = [
            "perf/maestro_run.py",
            *[a for p in [*parts, f"methods/{method}"] for a in ("--config", f"configs/{p}.yaml")],
        ]
        argv += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
        argv += ["--max-seconds", str(args.max_seconds)] if args.max_seconds else []
        extra = [f"{EXTRA[method]}={args.component}"] if method in EXTRA else []
        runs[method] = argv + [a for s in sets + extra for a in ("--set", s)]
    return runs


def describe(run: dict) -> str:
    """Per-phase medians, completion length and peak memory of one run (logged as soon as it ends)."""
    phases = ", ".join(f"{p} {bu.median(v):.2f} s" for p, v in run["phases"].items() if v)
    gpu = f"{run['peak_gpu_mb']:.0f}" if run["peak_gpu_mb"] else "-"
    return f"{phases}; completion length {bu.median(run['completion_length']):.0f}; peak GPU {gpu} MB"


def main() -> None:
    methods = sorted(p.stem for p in (ROOT / "configs" / "methods").glob("*.yaml"))
    parser = bu.harness_parser(__doc__.splitlines()[0], repeats=1, steps=20)
    parser.add_argument("--tiny", action="store_true", help="2-layer Qwen3 shape on CPU (smoke run)")
    parser.add_argument("--methods", nargs="+", default=methods, choices=methods)
    parser.add_argument("--rewards", default="paper", help="rewards/<name>.yaml (default: the paper's five)")
    parser.add_argument("--component", default="pref", help="the reward component single.yaml and trusted.yaml name")
    parser.add_argument("--new-tokens", type=int, default=None, help="default 256 (GPU) or 8 (--tiny)")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--engine", default=None, help="model.rollout.engine for every run (default: base/gpu.yaml's)")
    parser.add_argument(
        "--max-seconds", type=float, default=None, help="training-time budget per method run (a lent machine's limit)"
    )
    args = bu.parse_harness_args(parser)
    if args.tiny and args.steps == 20:
        args.steps, args.warmup = 3, 1
    args.new_tokens = args.new_tokens or (8 if args.tiny else 256)

    model_dir = Path(tempfile.mkdtemp(prefix="maestro_qwen3_8b_"))
    try:
        save_random_qwen3_8b(model_dir, args.tiny)
        runs = method_runs(model_dir, args)
        failures: dict[str, str] = {}
        results = bu.alternate(runs, args.repeats, failures=failures, detail=describe)
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)

    completions = (2 if args.tiny else 4) * 8
    phases = ("rollout", "scoring", "rewards", "inner", "outer")
    rows = []
    for name, done in results.items():
        if not done:
            rows.append([name, "failed", *["-"] * (len(phases) + 5), failures.get(name, "")])
            continue
        tokens = [
            length * completions / rollout
            for run in done
            for length, rollout in zip(run["completion_length"], run["phases"]["rollout"])
        ]
        gpu = max(run["peak_gpu_mb"] or 0 for run in done)
        rss = max(run["peak_rss_mb"] for run in done)
        timed = sum(len(run["step_s"]) for run in done)
        seconds = [f"{bu.median([s for run in done for s in run['phases'][p]]):.2f}" for p in phases]
        minibatches = ",".join(sorted({str(run.get("num_minibatches", "-")) for run in done}))
        rows.append(
            [
                name,
                timed,
                bu.pooled_median(done),
                *seconds,
                bu.median(tokens),
                minibatches,
                f"{gpu:.0f}" if gpu else "-",
                f"{rss:.0f}",
                "",
            ]
        )
    shape = "2-layer Qwen3 shape, bf16, CPU" if args.tiny else "Qwen3-8B-shaped, random bf16 weights"
    print(
        f"\n{bu.today()} · {bu.machine()} · {shape} · LoRA r16, gradient checkpointing · rewards/{args.rewards} · "
        f"{completions} completions x {args.new_tokens} new tokens · "
        f"rollout engine {args.engine or 'of base/gpu.yaml'} · up to {args.steps - args.warmup} timed steps"
    )
    headers = [
        "method",
        "timed steps",
        "wall s/step",
        *[f"{p} s" for p in phases],
        "rollout tokens/s",
        "minibatches",
        "peak GPU MB",
        "peak RSS MB",
        "note",
    ]
    print(bu.table(headers, rows))


if __name__ == "__main__":
    main()
