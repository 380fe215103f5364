"""DeepSpeed clips the gradients it owns: the policy update's ``max_grad_norm`` goes into DeepSpeed's config.

Why: under ZeRO-2 the reduced gradients live in DeepSpeed's partitions, not in ``param.grad``, so the policy
update's own ``clip_grad_norm_`` cannot see them. Lightning fills DeepSpeed's ``gradient_clipping`` from
``trainer.gradient_clip_val``, which it refuses for a module that optimises manually, as this one does; so the
module hands its own norm over before the strategy formats its config. A ``gradient_clipping`` that the user's
DeepSpeed config sets wins.
"""

from __future__ import annotations

from typing import Any


def pass_clipping_to_deepspeed(strategy: Any, max_grad_norm: float) -> bool:
    """Sets ``gradient_clipping`` in a DeepSpeed strategy's config unless it is set; True if the strategy is
    DeepSpeed's."""
    from lightning.pytorch.strategies import DeepSpeedStrategy  # imports without deepspeed installed

    if not isinstance(strategy, DeepSpeedStrategy):
        return False
    strategy.config.setdefault("gradient_clipping", float(max_grad_norm))
    return True
