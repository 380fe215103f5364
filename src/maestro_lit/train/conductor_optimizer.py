"""The Conductor's optimiser, owned by the module rather than by Lightning's optimizer list.

Why outside Lightning: the outer loop steps it raw (so ``trainer.global_step`` counts policy updates only), and
DeepSpeed's strategy accepts exactly one optimiser, which must be the policy's: DeepSpeed partitions it. Its
state travels in the Lightning checkpoint under ``checkpoint["maestro"]["conductor_optimizer"]``
(``train.module_state``), so exact resume holds for every strategy.

A checkpoint may be read before the optimiser exists (DDP and a single device restore before
``configure_optimizers``; FSDP2 after): the state waits in ``pending`` and is applied when the optimiser is built.

Gradients: under DDP and on one device ``manual_backward`` is the backward (DDP averages every parameter's
gradient). FSDP2 shards only the causal LM and DeepSpeed's engine owns only the policy's parameters, so there the
Conductor's gradient is averaged over ranks here, before its step: every rank then takes the same step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


class ConductorOptimizer:
    """Builds the Conductor's optimiser once its parameters are on their device; saves and restores its state."""

    def __init__(self, factory: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]) -> None:
        self.factory = factory
        self.optimizer: torch.optim.Optimizer | None = None
        self.pending: dict[str, Any] | None = None

    def build(self, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """A fresh optimiser over ``parameters``, with the checkpoint's state if one was read before."""
        self.optimizer = self.factory(list(parameters))
        if self.pending is not None:
            self.optimizer.load_state_dict(self.pending)
            self.pending = None
        return self.optimizer

    def state_dict(self) -> dict[str, Any] | None:
        """Tensors and plain containers (a ``weights_only`` checkpoint); None before it is built."""
        return self.optimizer.state_dict() if self.optimizer is not None else self.pending

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.optimizer is None:
            self.pending = state
        else:
            self.optimizer.load_state_dict(state)


def syncs_every_gradient(strategy: Any) -> bool:
    """Whether ``manual_backward`` under ``strategy`` already leaves the Conductor's gradient equal on every rank:
    one process, or DDP (it wraps the whole module)."""
    from lightning.pytorch.strategies import DDPStrategy

    return getattr(strategy, "world_size", 1) == 1 or isinstance(strategy, DDPStrategy)


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """All-reduce (mean) the gradients of replicated parameters, in one flat buffer."""
    import torch.distributed as dist

    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads or not dist.is_available() or not dist.is_initialized() or dist.get_world_size() == 1:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()
