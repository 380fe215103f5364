"""Warmup then cosine (or linear) decay of the policy's learning rate, addressable by ``class_path``.

Why a class: ``model.policy_lr_scheduler`` is built by the config parser as a callable that takes
the optimiser, which needs a scheduler *class* whose first argument is the optimiser. transformers'
``get_cosine_schedule_with_warmup`` is a function, and the parser rejects it (it asks for its
``optimizer`` argument); torch's ``SequentialLR`` needs scheduler instances, which a config cannot give.

The module steps the scheduler once per training step (one rollout), so ``warmup_steps`` and
``total_steps`` count rollouts, like ``trainer.max_steps``. The factor on the optimiser's lr at step
k (0-based) is (k + 1) / (warmup_steps + 1) during warmup — the first update already moves, where
transformers' schedule starts at 0 and spends a whole rollout on a zero-lr update — reaches 1 at step
``warmup_steps``, decays to ``min_lr_ratio`` at step ``total_steps`` and stays there after it (a run
longer than ``total_steps`` keeps training instead of failing, as torch's ``OneCycleLR`` would).
"""

from __future__ import annotations

import math
from typing import Literal

from jsonargparse.typing import ClosedUnitInterval, NonNegativeInt, PositiveInt
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


def warmup_decay_factor(
    step: int, warmup_steps: int, total_steps: int, decay: str = "cosine", min_lr_ratio: float = 0.0
) -> float:
    """The multiplier on the base learning rate at 0-based ``step``."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
    shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if decay == "cosine" else 1.0 - progress
    return min_lr_ratio + (1.0 - min_lr_ratio) * shape


class WarmupDecay(LRScheduler):
    """Linear warmup over ``warmup_steps``, then cosine or linear decay to ``min_lr_ratio`` × lr at ``total_steps``."""

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: NonNegativeInt = 0,
        total_steps: PositiveInt = 200,
        decay: Literal["cosine", "linear"] = "cosine",
        min_lr_ratio: ClosedUnitInterval = 0.0,
        last_epoch: int = -1,
    ) -> None:
        """``total_steps``: set it to ``trainer.max_steps``. ``min_lr_ratio``: the final lr as a share of the
        optimiser's lr."""
        if warmup_steps >= total_steps:
            key = "model.policy_lr_scheduler.init_args"
            raise ValueError(f"{key}.warmup_steps={warmup_steps} must be below total_steps={total_steps}")
        if decay not in ("cosine", "linear"):
            raise ValueError(f"model.policy_lr_scheduler.init_args.decay must be cosine or linear, got {decay!r}")
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)
        self.decay, self.min_lr_ratio = decay, float(min_lr_ratio)
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        return warmup_decay_factor(step, self.warmup_steps, self.total_steps, self.decay, self.min_lr_ratio)

    def get_lr(self) -> list[float]:
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]
