"""The terminal progress bar: rollouts done out of ``max_steps`` and what the run is optimising.

Lightning's bar counts epochs (meaningless for a streamed prompt set: "Epoch 3/-2") and shows the
logger version (``v_num``). This one shows ``step`` = rollouts done / ``trainer.max_steps``, the
scalar reward, the first ``components`` reward components and the KL, read from the metrics the
module logs (they refresh on the steps a logger writes, ``trainer.log_every_n_steps``).
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.callbacks import RichProgressBar

SCALAR, KL, COMPONENT_PREFIX = "train/scalar_reward", "train/kl", "train/reward/"


def bar_metrics(logged: dict[str, Any], step: int, max_steps: int, components: int = 2) -> dict[str, Any]:
    """The few numbers worth a glance, from ``trainer.callback_metrics``; absent ones are left out."""
    shown: dict[str, Any] = {"step": f"{step}/{max_steps}" if max_steps > 0 else str(step)}
    if SCALAR in logged:
        shown["reward"] = logged[SCALAR]
    for name in [key for key in logged if key.startswith(COMPONENT_PREFIX)][:components]:
        shown[name.removeprefix(COMPONENT_PREFIX)] = logged[name]
    if KL in logged:
        shown["kl"] = logged[KL]
    return {k: round(float(v), 4) if isinstance(v, (torch.Tensor, float)) else v for k, v in shown.items()}


class MaestroProgressBar(RichProgressBar):
    """Rich progress bar with the step out of ``max_steps``, the scalar reward, two components and the KL."""

    def __init__(self, components: int = 2, refresh_rate: int = 1, leave: bool = False) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self.components = components

    def _get_train_description(self, current_epoch: int) -> str:
        return "Training"  # the step count is in the metrics; epochs mean nothing for streamed prompts

    def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
        return bar_metrics(dict(trainer.callback_metrics), trainer.global_step, trainer.max_steps, self.components)
