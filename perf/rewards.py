"""Time every reward component on 64 completions: milliseconds per completion.

    python perf/rewards.py [--n 64] [--device cpu] [--repeats 3] [--synthetic] [--step-seconds S]

Uses the shipped prompts (``src/maestro_lit/assets/prompts/train.jsonl``) when present,
otherwise made-up ~30-word completions with prompts and references. Model-based components
use the shipped all-MiniLM-L6-v2 and a tiny locally built reward model (no network).
Each component is warmed up once (which also loads its model), then timed as the median of
``--repeats`` calls. Not a test.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from maestro_lit.rewards.callable import CallableReward
from maestro_lit.rewards.constraints import VerifiableConstraints
from maestro_lit.rewards.diversity import DistinctN, Novelty
from maestro_lit.rewards.fluency import Fluency
from maestro_lit.rewards.length import LengthBand
from maestro_lit.rewards.redundancy import Redundancy
from maestro_lit.rewards.reward_model import RewardModel
from maestro_lit.rewards.rouge import RougeL
from maestro_lit.rewards.similarity import SemanticSimilarity
from maestro_lit.rewards.tiny_rm import build_tiny_reward_model

PROMPTS_FILE = Path(__file__).resolve().parents[1] / "src/maestro_lit/assets/prompts/train.jsonl"
POOL = (
    "the river light morning quiet city answer because system energy people learn simple reason "
    "change small water history explain model data result careful story music travel market "
    "garden winter question example number future idea science friend language road"
).split()


def length_reward(prompts, completions, **columns):
    """TRL-shaped example used through CallableReward."""
    return [float(len(c.split())) for c in completions]


def make_batch(n: int, seed: int = 0, synthetic: bool = False) -> tuple[list[str], list[str], dict]:
    """n (prompt, completion) pairs in groups of 8 sharing a prompt, plus dataset columns."""
    rng = random.Random(seed)
    items = (
        [json.loads(line) for line in PROMPTS_FILE.read_text().splitlines() if line.strip()]
        if PROMPTS_FILE.exists() and not synthetic
        else []
    )
    prompts, completions, references, categories = [], [], [], []
    for i in range(n):
        g = i // 8
        if items:
            item = items[g % len(items)]
            prompt, reference, category = item["prompt"], item.get("reference"), item.get("category", "none")
            base = (item.get("response") or reference or prompt).split()
        else:
            prompt = f"Explain the {POOL[g % len(POOL)]} and the {POOL[(3 * g + 1) % len(POOL)]} in a short paragraph."
            reference = " ".join(random.Random(g).choice(POOL) for _ in range(30))  # one per group
            category, base = ["open_qa", "writing", "reasoning"][g % 3], reference.split()
        words = [w if rng.random() < 0.5 else rng.choice(POOL) for w in (base * 2)[:30]]
        completions.append(" ".join(words) + ".")
        prompts.append(prompt)
        references.append(reference)
        categories.append(category)
    columns = {
        "reference": references,
        "category": categories,
        "required_keywords": [["the", "river"]] * n,
        "forbidden_words": [["market"]] * n,
        "max_words": [40] * n,
        "max_sentences": [3] * n,
    }
    return prompts, completions, columns


def components(rm_path: str) -> list:
    return [
        LengthBand(),
        DistinctN(),
        Novelty(),
        Redundancy(),
        RougeL(),
        SemanticSimilarity(),
        RewardModel(rm_path),
        Fluency(),
        VerifiableConstraints(),
        CallableReward(f"{__name__}:length_reward", name="callable"),
    ]


def time_component(component, prompts, completions, columns, repeats: int) -> float:
    """Median seconds of one call over the whole batch, after one warm-up call."""
    component(prompts, completions, **columns)
    samples = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        component(prompts, completions, **columns)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


# ---------------------------------------------------------------------------------------
# LEAD: extend this. It should return the wall-clock seconds of one training step on the
# quickstart config (rollout + scoring + rewards + inner + outer), e.g. by running a few
# steps of `maestro_lit.train.module` with its per-phase timers and taking the median. Until then
# the share column is computed from --step-seconds, or shown as "n/a".
QUICKSTART = Path(__file__).resolve().parents[1] / "tests" / "configs" / "two_rewards.yaml"


def completions_per_step() -> int:
    import yaml

    config = yaml.safe_load(QUICKSTART.read_text())
    return config["data"]["batch_size"] * config["model"]["grpo_settings"]["num_generations"]


def training_step_seconds(args: argparse.Namespace) -> float | None:
    """Median seconds per training step of the quickstart config, measured here (or given)."""
    if args.step_seconds is not None or args.no_step:
        return args.step_seconds
    import statistics
    import time

    import yaml
    from lightning.pytorch.callbacks import Callback

    from maestro_lit.cli import MaestroCLI
    from maestro_lit.data.prompts import PromptDataModule
    from maestro_lit.train.module import MaestroModule

    class StepClock(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_batch_start(self, *args) -> None:
            self.start = time.perf_counter()

        def on_train_batch_end(self, *args) -> None:
            self.times.append(time.perf_counter() - self.start)

    config = yaml.safe_load(QUICKSTART.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        config["trainer"].update(
            max_steps=args.step_probe_steps,
            limit_val_batches=0,
            logger=False,
            default_root_dir=tmp,
            callbacks=[],
            enable_checkpointing=False,
        )
        clock = StepClock()
        MaestroCLI(MaestroModule, PromptDataModule, args={"fit": config}, trainer_defaults={"callbacks": [clock]})
    return statistics.median(clock.times[2:])  # skip warm-up steps


# ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--synthetic", action="store_true", help="made-up completions even if shipped prompts exist")
    parser.add_argument(
        "--step-seconds", type=float, default=None, help="seconds per training step (skips measuring it)"
    )
    parser.add_argument(
        "--step-probe-steps", type=int, default=12, help="quickstart steps run to measure the step time"
    )
    parser.add_argument("--no-step", action="store_true", help="do not measure the training step")
    args = parser.parse_args()

    prompts, completions, columns = make_batch(args.n, synthetic=args.synthetic)
    lengths = torch.randint(10, 48, (args.n,))
    mask = (torch.arange(48)[None, :] < lengths[:, None]).long()
    fluency_columns = {"ref_logprobs": -torch.rand(args.n, 48) * 4, "completion_mask": mask}
    step, per_step = training_step_seconds(args), completions_per_step()
    source = "shipped prompts" if PROMPTS_FILE.exists() and not args.synthetic else "made-up completions"
    print(f"{args.n} completions ({source}), device={args.device}, torch threads={torch.get_num_threads()}")
    if step:
        print(
            f"quickstart training step: {step * 1000:.0f} ms for {per_step} completions "
            f"(share = ms/completion × {per_step} / step)"
        )
    print(f"{'component':<14} {'class':<22} {'ms/completion':>14} {'ms/batch':>10} {'step share':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for component in components(build_tiny_reward_model(tmp)):
            if hasattr(component, "to"):
                component.to(args.device)
            extra = fluency_columns if component.needs_reference_logprobs else {}
            seconds = time_component(component, prompts, completions, {**columns, **extra}, args.repeats)
            share = f"{seconds / args.n * per_step / step:>10.2%}" if step else f"{'n/a':>10}"
            print(
                f"{component.name:<14} {type(component).__name__:<22} {1000 * seconds / args.n:>14.3f} "
                f"{1000 * seconds:>10.1f} {share:>11}"
            )


if __name__ == "__main__":
    main()
