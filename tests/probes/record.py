"""Test-only callback: after each step, append what this rank trained on and a digest of its weights."""

import json
from pathlib import Path

from lightning.pytorch.callbacks import Callback


def _whole(tensor):
    """A sharded (FSDP2) tensor gathered whole; collective, so every rank records the same names in order."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


class RecordSteps(Callback):
    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        trainable = {n: _whole(p.detach()).double() for n, p in pl_module.named_parameters() if p.requires_grad}
        policy = list(pl_module.policy.parameters())
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
            "policy_numel": sum(p.numel() for p in policy),  # the whole model's
            "policy_local_numel": sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in policy),
        }
        with (self.out / f"rank{trainer.global_rank}.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
