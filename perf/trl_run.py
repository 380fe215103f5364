"""Child process: the quickstart's GRPO work through TRL's ``GRPOTrainer`` (needs ``pip install trl``).

    python perf/trl_run.py --steps 12 --warmup 2 [--prompts 4 --generations 4 --max-new-tokens 32 --beta 0.0]

Same tiny model weights and tokenizer (``ensure_tiny_model()``), same shipped prompts
rendered with the same chat template, same LoRA, sampling, μ, β, ε, loss aggregation,
optimizer, lr and gradient clipping as ``tests/configs/two_rewards.yaml`` + ``configs/methods/static.yaml``;
the rewards are the project's ``LengthBand`` and ``DistinctN`` wrapped as TRL reward functions. TRL-only
overheads are switched off where TRL allows (gradient checkpointing and bf16, which TRL
turns on by default; reporting, tqdm, saving, completion logging). Prints ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from benchutil import StepClock, emit, peak_gpu_mb, peak_rss_mb  # noqa: E402


def reward_functions(min_words: int = 5, max_words: int = 15, n: int = 2):
    """The quickstart's two components as TRL reward functions (completions arrive as chat turns)."""
    from maestro_lit.rewards.diversity import DistinctN
    from maestro_lit.rewards.length import LengthBand

    def text(completion):
        return completion[0]["content"] if isinstance(completion, list) else completion

    def wrap(component):
        def reward(prompts, completions, **_):
            return component(prompts, [text(c).strip() for c in completions]).tolist()

        reward.__name__ = component.name
        return reward

    return [
        wrap(LengthBand(min_words=min_words, max_words=max_words, name="length")),
        wrap(DistinctN(n=n, name="diversity")),
    ]


def prompt_dataset():
    """The shipped training prompts as single-turn conversations (TRL applies the chat template)."""
    from datasets import Dataset

    from maestro_lit.paths import TRAIN_PROMPTS

    rows = [json.loads(line) for line in TRAIN_PROMPTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return Dataset.from_list(
        [{"prompt": [{"role": "user", "content": r["prompt"]}], "category": r["category"]} for r in rows]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step (B)")
    parser.add_argument("--generations", type=int, default=4, help="G")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--beta", type=float, default=0.0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--logging-steps", type=int, default=1, help="TRL's logging_steps (match ours' log_every_n_steps)"
    )
    args = parser.parse_args()

    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from maestro_lit.policy.model import load_tokenizer
    from maestro_lit.tiny import ensure_tiny_model

    torch.manual_seed(0)
    path = str(ensure_tiny_model())
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    clock = StepClock()
    lengths: list[float] = []  # mean completion length of each logging window after warm-up

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            clock.begin()

        def on_step_end(self, *a, **k):
            clock.end()

        def on_log(self, _args, state, _control, logs=None, **k):
            if logs and "completions/mean_length" in logs and state.global_step > args.warmup:
                lengths.append(float(logs["completions/mean_length"]))

    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out,
            max_steps=args.steps,
            seed=0,
            use_cpu=not torch.cuda.is_available(),
            # batch: per_device_train_batch_size counts completions in TRL -> B·G
            per_device_train_batch_size=args.prompts * args.generations,
            num_generations=args.generations,
            gradient_accumulation_steps=1,
            max_completion_length=args.max_new_tokens,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            num_iterations=1,
            beta=args.beta,
            epsilon=0.2,
            loss_type="grpo",
            scale_rewards="group",
            multi_objective_aggregation="normalize_then_sum",
            reward_weights=[0.5, 0.5],
            learning_rate=args.lr,
            weight_decay=0.0,
            lr_scheduler_type="constant",
            warmup_steps=0,
            optim="adamw_torch",
            max_grad_norm=1.0,
            gradient_checkpointing=False,
            bf16=False,
            fp16=False,
            logging_steps=args.logging_steps,
            report_to="none",
            disable_tqdm=True,
            save_strategy="no",
            log_completions=False,
            dataloader_num_workers=0,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=reward_functions(),
            args=config,
            train_dataset=prompt_dataset(),
            processing_class=load_tokenizer(path),
            callbacks=[Clock()],
            peft_config=LoraConfig(
                r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
            ),
        )
        trainer.train()
    emit(
        {
            **clock.result(args.warmup),
            "completion_length": lengths,
            "peak_rss_mb": peak_rss_mb(),
            "peak_gpu_mb": peak_gpu_mb(),
        }
    )


if __name__ == "__main__":
    main()
