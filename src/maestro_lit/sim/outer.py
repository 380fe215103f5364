"""The outer step as an injectable unit, so the simulator runs any scalariser's update schedule.

``OuterUpdate`` does what ``MaestroModule._conductor_update`` does today when ``every == 1``:
``scalarizer.loss(choice, meta_reward)`` and one optimizer step per GRPO step. With
``every = M > 1`` it buffers (h, columns, a, meta-reward) and every M steps takes one step
on the whole buffer, recomputing log π_φ(a|h) with the current parameters (the paper's
asynchronous schedule, docs/design.md §1 step 7). Anything with the same ``__call__`` can replace it
(e.g. the project's own buffered outer loop once it lands).
"""

from __future__ import annotations

from typing import Any

import torch

from maestro_lit.conductor import Scalarization, Scalarizer


class OuterUpdate:
    def __init__(self, scalarizer: Scalarizer, optimizer: torch.optim.Optimizer | None, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"OuterUpdate.every must be >= 1, got {every}")
        self.scalarizer, self.optimizer, self.every = scalarizer, optimizer, every
        self.buffer: list[tuple[torch.Tensor, dict[str, Any], int, torch.Tensor, torch.Tensor]] = []

    def __call__(self, hidden: torch.Tensor, columns: dict[str, Any], group_size: int, choice: Scalarization,
                 meta_reward: torch.Tensor) -> dict[str, float]:  # fmt: skip
        if not self.scalarizer.learnable or self.optimizer is None:
            return {}
        if self.every == 1:
            return self._step(*self.scalarizer.loss(choice, meta_reward))
        self.buffer.append((hidden.detach(), columns, group_size, choice.actions, meta_reward.detach()))
        if len(self.buffer) < self.every:
            return {}
        losses, entropies = [], []
        for h, cols, g, actions, meta in self.buffer:
            fresh = self.scalarizer.choose(h, cols, greedy=True, group_size=g)  # greedy: no RNG draw, only log-probs
            loss, entropy = self.scalarizer.loss(Scalarization(fresh.weights, actions, fresh.log_probs), meta)
            losses.append(loss)
            entropies.append(entropy)
        self.buffer.clear()
        return self._step(torch.stack(losses).mean(), torch.stack(entropies).mean())

    def _step(
        self, loss_entropy: tuple[torch.Tensor, torch.Tensor] | torch.Tensor, entropy: torch.Tensor | None = None
    ) -> dict[str, float]:
        loss, entropy = loss_entropy if entropy is None else (loss_entropy, entropy)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": float(loss.detach()), "entropy": float(entropy)}
