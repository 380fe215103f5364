"""Test-only callback: after each step, append what this rank trained on and a digest of its weights."""

import json
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class RecordSteps(Callback):
    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        trainable = {n: p.detach().double() for n, p in pl_module.named_parameters() if p.requires_grad}
        record = {
            "rank": trainer.global_rank,
            "step": trainer.global_step,
            "prompts": pl_module.last_step.prompts[:: pl_module.grpo_settings.num_generations],
            "completions": pl_module.last_step.completions,
            "logged": {
                k: float(v)
                for k, v in trainer.callback_metrics.items()
                if k.startswith("train/") and "/reward_std/" not in k
            },
            "digest": {n: [float(t.sum()), float((t * t).sum())] for n, t in trainable.items()},
        }
        with (self.out / f"rank{trainer.global_rank}.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
