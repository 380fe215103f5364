"""QLoRA (4-bit NF4 base through bitsandbytes) against bf16 LoRA on the same GRPO work: s/step and peak GPU memory.

    pip install -e ".[quant]"                  # bitsandbytes (the GPU image lacks it: install the wheel first)
    python perf/qlora.py                 # GPU: Qwen2-0.5B-shaped model, random bf16 weights
    python perf/qlora.py --tiny          # CPU smoke run: a small Qwen2 shape in fp32
                                         # (bitsandbytes >= 0.49 runs NF4 on CPU)

The model is built from a config with random weights and saved next to the embedded tiny
model's tokenizer (nothing can be downloaded on the GPU machines; token ids the tokenizer
does not know decode to nothing, and random weights never emit EOS, so every completion is
``--new-tokens`` long). Both contenders run ``tests/configs/two_rewards.yaml`` + ``configs/methods/static.yaml`` through
``maestro_run.py`` with the same overrides (B prompts x G completions, LoRA r 8 on all
linear layers, adapters not merged for the rollout, which 4-bit weights do not allow);
``qlora`` adds ``model.policy.load_in_4bit=true``. Alternating rounds; a contender that
fails (no CUDA, no bitsandbytes) is reported with its reason instead of stopping the others.
``--contenders qlora`` runs the 4-bit one alone (a lent machine's time: its s/step and peak memory).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import benchutil as bu
import torch
from gpu_rollout import QWEN2_05B

TINY_QWEN2 = dict(
    QWEN2_05B, hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
)


def save_random_model(out: Path, tiny: bool) -> None:
    """A Qwen2-shaped causal LM with random weights plus the embedded tokenizer, loadable by ``from_pretrained``."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    from maestro_lit.policy.model import load_tokenizer
    from maestro_lit.tiny import ensure_tiny_model

    torch.manual_seed(0)
    tokenizer = load_tokenizer(str(ensure_tiny_model()))
    config = Qwen2Config(**(TINY_QWEN2 if tiny else QWEN2_05B), eos_token_id=None, pad_token_id=tokenizer.pad_token_id)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32 if tiny else torch.bfloat16)
    model.generation_config.eos_token_id = None  # random weights: decode every token
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def contenders(
    model_dir: Path, tiny: bool, steps: int, warmup: int, prompts: int, generations: int, new_tokens: int
) -> dict[str, list[str]]:
    sets = {
        "model.policy.name_or_path": str(model_dir),
        "model.policy.dtype": "float32" if tiny else "bfloat16",
        "trainer.accelerator": "cpu" if tiny else "gpu",
        "model.sampling.merge_adapters_for_rollout": "false",
        "model.grpo_settings.num_generations": str(generations),
        "model.sampling.max_new_tokens": str(new_tokens),
        "data.batch_size": str(prompts),
    }
    lora = [
        "perf/maestro_run.py",
        "--config",
        "tests/configs/two_rewards.yaml",
        "--config",
        "configs/methods/static.yaml",
        "--steps",
        str(steps),
        "--warmup",
        str(warmup),
    ]
    lora += [a for key, value in sets.items() for a in ("--set", f"{key}={value}")]
    return {"lora_" + ("fp32" if tiny else "bf16"): lora, "qlora": [*lora, "--set", "model.policy.load_in_4bit=true"]}


def main() -> None:
    parser = bu.harness_parser(__doc__.splitlines()[0], repeats=2, steps=8)
    parser.add_argument("--tiny", action="store_true", help="small Qwen2 shape on CPU (smoke run)")
    parser.add_argument("--prompts", type=int, default=None, help="B; default 8 (GPU) or 2 (--tiny)")
    parser.add_argument("--generations", type=int, default=None, help="G; default 8 (GPU) or 4 (--tiny)")
    parser.add_argument("--new-tokens", type=int, default=None, help="default 128 (GPU) or 16 (--tiny)")
    parser.add_argument(
        "--contenders", default="lora,qlora", help="comma list of lora (bf16; fp32 with --tiny) and qlora"
    )
    args = bu.parse_harness_args(parser)
    wanted = set(args.contenders.split(","))
    if not wanted or wanted - {"lora", "qlora"}:
        parser.error(f"--contenders: choose among lora, qlora; got {args.contenders!r}")
    prompts, generations = args.prompts or (2 if args.tiny else 8), args.generations or (4 if args.tiny else 8)
    new_tokens = args.new_tokens or (16 if args.tiny else 128)

    model_dir = Path(tempfile.mkdtemp(prefix="maestro_qlora_"))
    try:
        save_random_model(model_dir, args.tiny)
        runs = contenders(model_dir, args.tiny, args.steps, args.warmup, prompts, generations, new_tokens)
        runs = {name: argv for name, argv in runs.items() if name.split("_")[0] in wanted}
        failures: dict[str, str] = {}
        results = bu.alternate(runs, args.repeats, failures=failures)
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)

    base_name = next(iter(runs))
    rows = []
    for name, done in results.items():
        if not done:
            rows.append([name, "failed", "-", "-", "-", failures.get(name, "")])
            continue
        gpu = max(run["peak_gpu_mb"] or 0 for run in done)
        ratio = bu.paired_ratio(done, results[base_name]) if results[base_name] else float("nan")
        ratio = ratio if len(runs) > 1 else "-"
        rows.append(
            [
                name,
                bu.pooled_median(done),
                ratio,
                f"{gpu:.0f}" if gpu else "-",
                f"{max(run['peak_rss_mb'] for run in done):.0f}",
                "",
            ]
        )
    shape = "small Qwen2 shape, fp32, CPU" if args.tiny else "Qwen2-0.5B-shaped, random weights"
    print(
        f"\n{bu.today()} · {bu.machine()} · {shape} · B={prompts} G={generations} new tokens {new_tokens} · "
        f"{args.repeats} rounds x {args.steps - args.warmup} timed steps"
    )
    print(bu.table(["run", "wall s/step", f"vs {base_name}", "peak GPU MB", "peak RSS MB", "note"], rows))


if __name__ == "__main__":
    main()
